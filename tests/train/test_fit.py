"""Training: losses against hand-computed values, schedules, determinism,
checkpoints and resuming after a real Ctrl-C."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mnistlab import TrainConfig, create_model, fit, load_checkpoint, save_checkpoint
from mnistlab.analysis.plots import write_curves
from mnistlab.errors import UsageError
from mnistlab.runs import read_metrics
from mnistlab.runs.checkpoint import CheckpointError
from mnistlab.train import evaluate, make_loss, make_optimizer
from mnistlab.train.state import capture_state, restore_state
from tests.support.cli import run_main

# a quick, unaugmented recipe: 2,048 images are too few to learn the default's augmentations
SMALL = dict(
    model="cnn", train_subset=2048, val_size=512, batch_size=64, log_every=8, augment="none"
)


def _strip_times(records):
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in records]


# --- losses -----------------------------------------------------------------


def test_mse_on_one_hot_matches_hand_computation():
    logits = torch.tensor([[0.5, 0.0, 0.0], [0.0, 2.0, 1.0]])
    y = torch.tensor([0, 2])
    # one-hot targets [1,0,0] and [0,0,1]; squared errors: 0.25,0,0 and 0,4,0 -> 4.25 / 6
    assert make_loss("mse", num_classes=3)(logits, y).item() == pytest.approx(4.25 / 6)


def test_cross_entropy_with_label_smoothing_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.0]])
    y = torch.tensor([0])
    logp = [2 - math.log(math.exp(2) + 1), -math.log(math.exp(2) + 1)]
    # smoothing 0.2 over 2 classes: target (0.9, 0.1)
    expected = -(0.9 * logp[0] + 0.1 * logp[1])
    assert make_loss("ce", 0.2, 2)(logits, y).item() == pytest.approx(expected, rel=1e-6)


# --- config -----------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value,flag",
    [
        ("epochs", 0, "--epochs"),
        ("lr", 0.0, "--lr"),
        ("lr", -1.0, "--lr"),
        ("batch_size", 0, "--batch-size"),
        ("optimizer", "rmsprop", "--optimizer"),
        ("schedule", "linear", "--schedule"),
        ("loss", "hinge", "--loss"),
        ("momentum", 1.5, "--momentum"),
    ],
)
def test_bad_config_values_are_usage_errors(field, value, flag):
    with pytest.raises(UsageError) as exc:
        TrainConfig(**{field: value}).validate()
    # the library names the setting; the command line shows it as its flag
    assert exc.value.option == field and "--" not in str(exc.value)
    assert exc.value.cli_message().startswith(flag + " ")


# --- fit --------------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_same_metrics_and_different_seed_differs(tmp_path):
    runs = [
        fit(TrainConfig(**SMALL, epochs=1, seed=s, out_dir=str(tmp_path), run_name=f"r{i}"))
        for i, s in enumerate([3, 3, 4])
    ]
    a, b, c = (_strip_times(read_metrics(r.run_dir)) for r in runs)
    assert a == b
    assert a != c
    assert len([r for r in a if r["type"] == "step"]) == 2048 // 64 // 8


@pytest.mark.slow
@pytest.mark.parametrize(
    "optimizer,schedule,loss,lr",
    [
        ("sgd", "step", "ce", 0.05),
        ("adam", "cosine", "ce", 3e-3),
        ("adamw", "onecycle", "ce", 5e-3),
        ("adadelta", "none", "ce", 1.0),
        ("sgd", "none", "mse", 0.05),
    ],
)
def test_each_optimizer_schedule_and_loss_learns(tmp_path, optimizer, schedule, loss, lr):
    cfg = TrainConfig(
        **SMALL,
        epochs=2,
        optimizer=optimizer,
        schedule=schedule,
        loss=loss,
        # the default recipe's label smoothing (0.1) is for cross-entropy only
        label_smoothing=0.1 if loss == "ce" else 0.0,
        lr=lr,
        gamma=0.5,
        out_dir=str(tmp_path),
    )
    result = fit(cfg)
    first, last = result.history
    assert last["train_loss"] < first["train_loss"]
    assert last["val_acc"] > 0.8  # 10% is chance
    if schedule == "step":  # decayed once per epoch, read after the epoch's last step
        assert first["lr"] == pytest.approx(lr * 0.5)
        assert last["lr"] == pytest.approx(lr * 0.25)
    elif schedule == "none":
        assert last["lr"] == lr
    else:  # cosine and one-cycle anneal to (almost) zero
        assert last["lr"] < lr * 1e-2


@pytest.mark.slow
def test_best_checkpoint_is_selected_on_validation_and_reloads(tmp_path, mnist):
    result = fit(TrainConfig(**SMALL, epochs=2, lr=0.02, out_dir=str(tmp_path)))
    run = result.run_dir
    names = ["config.json", "metrics.jsonl", "best.json", "best.safetensors", "last.json"]
    for name in [*names, "last.safetensors", "last.state.safetensors"]:
        assert (run / name).is_file(), name
    # training writes data; the curves are analysis's (the CLI draws them every epoch)
    assert write_curves(run).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best_val = max(h["val_acc"] for h in result.history)
    assert result.best["val_acc"] == best_val
    model, doc = load_checkpoint(run)
    assert doc["metrics"]["val_acc"] == best_val
    assert doc["dataset"] == "mnist" and doc["config"]["model"] == "cnn"
    assert doc["torch_version"] == torch.__version__ and doc["mnistlab_version"]
    # the reloaded weights give exactly the test accuracy recorded at save time
    ev = evaluate(model, *mnist.test, 0.1307, 0.3081, make_loss("ce"))
    assert ev["acc"] == doc["metrics"]["test_acc"]
    assert json.loads((run / "config.json").read_text()) == result_config(run)


def result_config(run: Path) -> dict:
    return json.loads((run / "last.json").read_text())["config"]


# --- checkpoints ------------------------------------------------------------


def test_checkpoint_round_trip_is_exact(tmp_path):
    torch.manual_seed(1)
    model = create_model("fast", width=4, mean=0.2, std=0.4, class_names=list("ABCDEFGHIJ"))
    model(torch.randn(8, 1, 28, 28))  # move the BatchNorm running stats off their defaults
    model.eval()
    path = save_checkpoint(tmp_path / "ck", model, {"metrics": {"test_acc": 0.5}})
    assert path == tmp_path / "ck.json"
    loaded, doc = load_checkpoint(tmp_path / "ck.safetensors")
    assert loaded.meta == model.meta
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = torch.randn(5, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))
    assert doc["metrics"] == {"test_acc": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.json", "ck.safetensors"]


def test_tampered_or_foreign_checkpoints_are_refused(tmp_path):
    model = create_model("cnn")
    save_checkpoint(tmp_path / "ck", model)
    weights = tmp_path / "ck.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path / "ck.json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="not an mnistlab checkpoint"):
        load_checkpoint(tmp_path / "other.json")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")
    # a pickle posing as weights is never unpickled, only refused
    save_checkpoint(tmp_path / "p", model)
    torch.save(model.state_dict(), tmp_path / "p.safetensors")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "p.json")


def test_weights_of_another_architecture_are_refused_with_what_differs(tmp_path):
    # what a checkpoint of an older `fast` (its layers at other sizes) meets
    save_checkpoint(tmp_path / "ck", create_model("cnn"))
    doc = json.loads((tmp_path / "ck.json").read_text())
    doc["model"]["name"] = "lenet"
    (tmp_path / "ck.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "ck.json")
    msg = str(e.value)
    assert "do not fit model 'lenet'" in msg and "retrain" in msg and "\n" not in msg
    # cnn has conv1, conv2, fc1, fc2; lenet has conv1, conv2 (other sizes) and fc1, fc2, fc3
    assert "2 missing, e.g. 'fc3.weight'" in msg and "unexpected" not in msg
    assert "8 of another shape, e.g. 'conv1.weight'" in msg


# --- Ctrl-C and --resume ----------------------------------------------------

# The default recipe's augmentation through the command line, without its outliers:
# rendering them would cost each of the three runs more than its training, and their
# stream resuming exactly is checked in-process (tests/train/test_ema.py).
TRAIN = [
    sys.executable,
    "-m",
    "mnistlab",
    "train",
    "--model",
    "cnn",
    "--epochs",
    "2",
    "--outliers",
    "0",
    "--train-subset",
    "2000",
    "--val-size",
    "1000",
    "--batch-size",
    "32",
    "--log-every",
    "5",
    "--threads",
    "1",
    "--optimizer",
    "sgd",
    "--lr",
    "0.05",
    "--schedule",
    "onecycle",
]


def _run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adadelta"])
def test_optimizer_state_round_trip_resumes_exactly_on_a_channels_last_model(tmp_path, name):
    # safetensors gives the state back NCHW-contiguous while the weights are NHWC; fused
    # kernels read both as flat memory, so without re-laying the state out a resumed
    # run silently updates the wrong elements (this failed before the fix).
    def model():
        torch.manual_seed(0)
        return create_model("fast", width=8).to(memory_format=torch.channels_last)

    torch.manual_seed(1)
    xs = [torch.randn(16, 1, 28, 28) for _ in range(6)]
    ys = [torch.randint(0, 10, (16,)) for _ in range(6)]

    def steps(m, opt, batches):
        for x, y in batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()

    ref = model()
    steps(ref, make_optimizer(name, ref.parameters(), 0.01), zip(xs, ys, strict=True))
    cut = model()
    opt = make_optimizer(name, cut.parameters(), 0.01)
    steps(cut, opt, zip(xs[:3], ys[:3], strict=True))
    tensors, doc = capture_state(opt, None)
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp_path / "s.safetensors")
    again = model()
    again.load_state_dict(cut.state_dict())
    opt2 = make_optimizer(name, again.parameters(), 0.01)
    restore_state(opt2, None, load_file(tmp_path / "s.safetensors"), json.loads(json.dumps(doc)))
    steps(again, opt2, zip(xs[3:], ys[3:], strict=True))
    want, got = ref.state_dict(), again.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)


@pytest.mark.slow
def test_ctrl_c_saves_state_and_resume_ends_where_an_uninterrupted_run_would(tmp_path):
    out = str(tmp_path)
    # the uninterrupted run, and the resume, in this process: only the cut needs one of
    # its own, to be interrupted
    ref = run_main(*TRAIN[3:], "--out-dir", out, "--name", "ref")
    assert ref.returncode == 0, ref.stderr

    proc = subprocess.Popen(
        [*TRAIN, "--out-dir", out, "--name", "cut"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    # interrupt in the middle of the first epoch, once a few steps are logged
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "mnistlab train --resume" in stdout
    resume = json.loads((tmp_path / "cut" / "last.json").read_text())["resume"]
    assert not resume["done"] and (resume["epoch"], resume["step"]) > (1, 0)

    again = run_main("train", "--resume", tmp_path / "cut", "--threads", "1")
    assert again.returncode == 0, again.stderr
    assert _strip_times(read_metrics(tmp_path / "cut")) == _strip_times(
        read_metrics(tmp_path / "ref")
    )
    for stem in ("best", "last"):
        a = load_file(str(tmp_path / "ref" / f"{stem}.safetensors"))
        b = load_file(str(tmp_path / "cut" / f"{stem}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), stem
    finished = run_main("train", "--resume", tmp_path / "cut")
    assert finished.returncode == 1 and "already finished" in finished.stderr
