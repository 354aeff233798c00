"""Issue 15, training side: absurd values refused in one line, a diverging run stopped
with what to change, tampered checkpoints and run folders refused, never a traceback."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlab import TrainConfig, create_model, fit, load_checkpoint, save_checkpoint
from mnistlab.errors import MnistlabError, UsageError
from mnistlab.runs import folder
from mnistlab.runs.checkpoint import CheckpointError
from mnistlab.train import Reporter
from mnistlab.train.optim import make_optimizer, make_scheduler
from tests.support.processes import cli_env


def _cli(mnist_dir: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnistlab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(mnist_dir),
    )


def _one_line(proc: subprocess.CompletedProcess, rc: int) -> str:
    """The single error line of a failed command, after checking the promise."""
    assert proc.returncode == rc, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "unexpected" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as every other JSON reader does."""

    def refuse(name):
        raise ValueError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=refuse)


# --- absurd values: one line, exit 2, before anything is written --------------


@pytest.mark.parametrize(
    "args,expect",
    [
        (["--lr", "inf"], "--lr must be"),
        (["--lr", "1e30"], "--lr must be"),
        (["--lr", "nan"], "--lr must be"),
        (["--mean", "nan"], "--mean must be"),
        (["--std", "inf"], "--std must be"),
        (["--std", "0"], "--std must be"),
        (["--weight-decay", "inf"], "--weight-decay must be"),
        (["--seed", "99999999999999999999"], "--seed must be between 0 and"),
        (["--seed", "-1"], "--seed must be between 0 and"),
        (["--threads", "1000"], "--threads must be between 1 and"),
        (["--epochs", "100000000000000000000"], "--epochs must be at least 1 and at most"),
        (["--model", "lenet5", "--ops", "bogus"], "--ops must be one of torch, im2col, loops"),
        (
            ["--model", "cnn", "--ops", "im2col"],
            "model 'cnn': bad arguments {'ops': 'im2col'}: no setting 'ops'",
        ),
        (["--train-subset", "100000"], "--train-subset asks for 100,000 images"),
        (["--name", "../escaped"], "the run name must be a plain folder name"),
        (["--batch-size", "10000000"], "--batch-size must be at least 1 and at most"),
    ],
)
def test_absurd_training_values_are_refused_in_one_line(tmp_path, mnist_dir, args, expect):
    proc = _cli(mnist_dir, "train", *args, "--dry-run", "--out-dir", str(tmp_path))
    line = _one_line(proc, 2)
    assert expect in line, line
    assert list(tmp_path.iterdir()) == []  # refused before a run folder was made


@pytest.mark.parametrize("batches", ["0", "-1,64", "100000000", "", "1,,64", "x"])
def test_ops_bench_refuses_bad_batch_sizes(mnist_dir, batches):
    line = _one_line(_cli(mnist_dir, "ops-bench", "--batches", batches), 2)
    assert "--batches must be batch sizes from 1 to" in line and repr(batches) in line


def test_loss_mse_alone_is_not_refused_for_the_default_label_smoothing(tmp_path, mnist_dir):
    # the default recipe smooths labels (0.1), which only cross-entropy takes: `--loss mse`
    # must not fail on a flag the user never gave. The bad --augment is only there to stop
    # the command right after the label smoothing check passed.
    args = ["--loss", "mse", "--augment", "bogus", "--out-dir", str(tmp_path)]
    line = _one_line(_cli(mnist_dir, "train", *args), 2)
    assert "--augment must be" in line and "label" not in line
    line = _one_line(_cli(mnist_dir, "train", *args[:2], "--label-smoothing", "0.1"), 2)
    assert "--label-smoothing works with loss ce only; set it to 0" in line


def test_ops_bench_refuses_absurd_threads(mnist_dir):
    line = _one_line(_cli(mnist_dir, "ops-bench", "--threads", "1000"), 2)
    assert "--threads must be between 1 and" in line


def test_config_fields_of_the_wrong_type_are_refused():
    # what an edited config.json brings: a string epoch count, kwargs as a string
    for changes, option in [
        ({"epochs": "10"}, "epochs"),
        ({"model_kwargs": "ops"}, "model_kwargs"),
        ({"lr": "0.1"}, "lr"),
        ({"channels_last": 1}, "channels_last"),
    ]:
        with pytest.raises(UsageError) as exc:
            TrainConfig(**changes).validate()
        assert exc.value.option == option
    TrainConfig().validate()  # the default recipe itself passes


def test_model_settings_are_checked_against_what_the_model_takes():
    with pytest.raises(UsageError, match="takes only width, hidden"):
        create_model("fast", depth=3)
    with pytest.raises(UsageError, match="width must be a whole number from 1 to"):
        create_model("fast", width=10**9)  # would try to allocate terabytes
    assert create_model("lenet5", ops="im2col").meta.kwargs == {"ops": "im2col"}


# --- a run whose loss becomes nan ------------------------------------------------

DIVERGES = [  # plain SGD at lr 10 with momentum: the loss overflows within a few steps
    *["--model", "linear", "--optimizer", "sgd", "--lr", "10", "--momentum", "0.9"],
    *["--schedule", "none", "--augment", "none", "--label-smoothing", "0"],
    *["--train-subset", "1024", "--val-size", "256", "--batch-size", "64", "--epochs", "2"],
    *["--log-every", "2", "--threads", "1"],
]


def test_a_diverging_run_stops_at_once_says_what_to_change_and_writes_no_nan(tmp_path, mnist_dir):
    proc = _cli(mnist_dir, "train", *DIVERGES, "--out-dir", str(tmp_path), "--name", "div")
    line = _one_line(proc, 1)
    assert "--lr 10 is too high" in line and "became nan" in line, line
    assert "lower one, e.g. 1" in line
    run = tmp_path / "div"
    # stopped in the first epoch: no model was kept as "best", none as "last"
    assert not (run / "best.json").exists() and not (run / "last.json").exists()
    records = [_strict_json(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert records and all(r["type"] == "step" for r in records)
    assert all(math.isfinite(r["loss"]) for r in records)
    _strict_json((run / "config.json").read_text())
    # and resuming it says there is nothing to resume, and to train again
    again = _one_line(_cli(mnist_dir, "train", "--resume", str(run)), 1)
    assert "nothing to resume" in again and "train it again" in again
    assert "checkpoint file" not in again and ".json/.safetensors" not in again


def test_the_loop_stops_before_a_nan_step_updates_the_weights(tmp_path):
    from mnistlab.train.loop import Diverged

    cfg = TrainConfig(
        model="linear",
        optimizer="sgd",
        lr=10.0,
        momentum=0.9,
        schedule="none",
        augment="none",
        label_smoothing=0.0,
        train_subset=1024,
        val_size=256,
        batch_size=64,
        epochs=2,
        out_dir=str(tmp_path),
        run_name="r",
    )
    with pytest.raises(MnistlabError) as exc:
        fit(cfg)
    assert exc.value.option == "lr" and exc.value.kind == "diverged"
    assert isinstance(exc.value.__context__, Diverged)


@pytest.mark.parametrize("check_every,raised_at", [(1, 3), (50, 4)])
def test_a_nan_loss_is_caught_on_cpu_at_once_and_elsewhere_before_it_is_logged(
    check_every, raised_at
):
    # check_every=50 is what an accelerator does (reading the loss back costs a sync there)
    import torch
    import torch.nn.functional as F

    from mnistlab.data.loader import DeviceLoader
    from mnistlab.train.loop import Diverged, train_one_epoch

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=g)
    loader = DeviceLoader(images, torch.arange(64) % 10, 8, 0.13, 0.31)
    model = create_model("linear")
    calls = []

    def loss_fn(logits, y):  # the third batch's loss is nan, as after an overflow
        calls.append(1)
        loss = F.cross_entropy(logits, y)
        return loss * math.nan if len(calls) == 3 else loss

    logs, updated = [], []  # the steps that updated the weights
    opt = make_optimizer("sgd", model.parameters(), 0.01)
    with pytest.raises(Diverged) as exc:
        train_one_epoch(
            model,
            loader,
            opt,
            loss_fn,
            epoch=1,
            log_every=2,
            on_log=logs.append,
            on_step=updated.append,
            check_every=check_every,
        )
    assert exc.value.step == raised_at and math.isnan(exc.value.value)
    assert [r["step"] for r in logs] == [2] and math.isfinite(logs[0]["loss"])
    if check_every == 1:  # stopped before the nan step could touch the weights
        assert updated == [1, 2]
        assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_four_step_one_cycle_schedule_runs():
    # torch's OneCycleLR divided by zero when the warm-up ended on step 0 (4 steps in all):
    # `--train-subset 256 --batch-size 64 --epochs 1` crashed with "unexpected"
    model = create_model("linear")
    opt = make_optimizer("adam", model.parameters(), 0.01)
    sched = make_scheduler("onecycle", opt, epochs=1, steps_per_epoch=4)
    lrs = []
    for _ in range(4):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert all(math.isfinite(lr) for lr in lrs) and min(lrs) < 0.01 * 1e-2


def test_json_written_by_training_never_holds_a_bare_nan(tmp_path):
    line = folder.json_line({"type": "step", "loss": float("nan"), "lr": float("inf")})
    assert _strict_json(line) == {"type": "step", "loss": None, "lr": None}
    path = save_checkpoint(tmp_path / "ck", create_model("linear"), {"metrics": {"x": math.nan}})
    assert _strict_json(path.read_text())["metrics"] == {"x": None}


# --- tampered checkpoints ----------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return save_checkpoint(tmp_path / "ck", create_model("lenet5"))


def _edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


TAMPERED = {
    "kwargs as a string": (lambda d: d["model"].update(kwargs="ops"), "model.kwargs must be"),
    "model as a list": (lambda d: d.update(model=["lenet5"]), "model must be an object"),
    "class_names as an int": (
        lambda d: d["model"].update(class_names=10),
        "model.class_names must be",
    ),
    "unknown ops": (lambda d: d["model"].update(kwargs={"ops": "bogus"}), "--ops must be one of"),
    "std 0": (lambda d: d["model"].update(std=0), "model.std must be a finite number above 0"),
    "mean nan": (lambda d: d["model"].update(mean=math.nan), "model.mean must be a finite"),
    "no weights_sha256": (lambda d: d.pop("weights_sha256"), "has no valid weights_sha256"),
    "format_version 99": (lambda d: d.update(format_version=99), "upgrade mnistlab"),
    "format_version text": (lambda d: d.update(format_version="1"), "unknown checkpoint format"),
    "weights elsewhere": (
        lambda d: d.update(weights="../ck.safetensors"),
        "weights must name a file beside it",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_checkpoint_json_is_refused_naming_the_file(checkpoint, case):
    change, expect = TAMPERED[case]
    _edit(checkpoint, change)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(checkpoint)
    message = exc.value.cli_message()
    assert expect in message and str(checkpoint) in message and "\n" not in message


def test_integrity_is_never_skipped_corrupt_weights_without_a_hash(checkpoint):
    # what made corrupted weights evaluate as "loss nan, accuracy 9.80%" with rc 0
    weights = checkpoint.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-8:] = b"\xff" * 8  # the last weights become nan
    weights.write_bytes(bytes(data))
    _edit(checkpoint, lambda d: d.pop("weights_sha256"))
    with pytest.raises(CheckpointError, match="cannot be checked"):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize("case", ["format_version 99", "class_names as an int", "std 0"])
def test_evaluate_refuses_a_tampered_checkpoint_in_one_line(checkpoint, mnist_dir, case):
    change, expect = TAMPERED[case]
    _edit(checkpoint, change)
    line = _one_line(_cli(mnist_dir, "evaluate", str(checkpoint)), 1)
    assert expect in line


# --- run folders -------------------------------------------------------------------


class _CtrlCAfterEpoch1(Reporter):
    """Presses Ctrl-C (a real SIGINT to this process) as epoch 1 ends."""

    def epoch_end(self, record: dict) -> None:
        if record["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture(scope="module")
def resumable(tmp_path_factory) -> Path:
    """A tiny run folder stopped by Ctrl-C after epoch 1 of 2."""
    out = tmp_path_factory.mktemp("resumable")
    cfg = TrainConfig(
        model="linear",
        augment="none",
        train_subset=256,
        val_size=128,
        batch_size=64,
        epochs=2,
        out_dir=str(out),
        run_name="r",
    )
    result = fit(cfg, reporter=_CtrlCAfterEpoch1())
    assert result.interrupted and result.position["epoch"] == 2
    return result.run_dir


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


RESUME_TAMPERED = {
    "string resume epoch": (
        "last.json",
        lambda d: d["resume"].update(epoch="2"),
        "resume.epoch is '2', not a count",
    ),
    "no resume key": ("last.json", lambda d: d.pop("resume"), "holds no resume position"),
    "another model in config.json": (
        "config.json",
        lambda d: d.update(model="cnn"),
        "config.json names model 'cnn' but last.json holds 'linear'",
    ),
    "bad value in config.json": (
        "config.json",
        lambda d: d.update(lr=float("inf")),
        "config.json: --lr must be",
    ),
    "settings the model lacks in config.json": (
        "config.json",
        lambda d: d.update(model_kwargs={"ops": "bogus"}),
        "config.json: model 'linear': bad arguments",
    ),
    "unknown model in config.json": (
        "config.json",
        lambda d: d.update(model="nosuch"),
        "config.json: unknown model 'nosuch'",
    ),
}


@pytest.mark.parametrize("case", list(RESUME_TAMPERED))
def test_resume_refuses_an_edited_run_folder_in_one_line(resumable, tmp_path, mnist_dir, case):
    name, change, expect = RESUME_TAMPERED[case]
    run = _copy(resumable, tmp_path)
    _edit(run / name, change)
    line = _one_line(_cli(mnist_dir, "train", "--resume", str(run)), 1)
    assert expect in line, line


def test_the_untampered_folder_resumes(resumable, tmp_path):
    result = fit(TrainConfig(), resume=_copy(resumable, tmp_path))
    assert [h["epoch"] for h in result.history] == [1, 2]


def test_a_run_folder_with_only_its_config_says_there_is_nothing_to_resume(tmp_path, mnist_dir):
    # what Ctrl-C before the first checkpoint leaves
    run = tmp_path / "early"
    run.mkdir()
    folder.write_config(run, TrainConfig().to_dict())
    line = _one_line(_cli(mnist_dir, "train", "--resume", str(run)), 1)
    assert "nothing to resume" in line and "train it again" in line
    line = _one_line(_cli(mnist_dir, "evaluate", str(run)), 1)
    assert "holds no checkpoint" in line and "train it again" in line


@pytest.mark.parametrize("command", [["train", "--resume"], ["evaluate"]])
def test_a_nonexistent_run_path_says_no_such_folder(tmp_path, mnist_dir, command):
    missing = tmp_path / "nonexistent"
    line = _one_line(_cli(mnist_dir, *command, str(missing)), 1)
    assert "no such folder" in line and str(missing) in line
    assert "nonexistent.json" not in line


def test_corrupt_run_files_are_named_in_one_line(resumable, tmp_path):
    run = _copy(resumable, tmp_path)
    (run / "last.json").write_text("{not json")
    with pytest.raises(MnistlabError, match=r"last\.json: not valid JSON"):
        folder.is_finished(run)
    (run / "config.json").write_text("[1, 2]")
    with pytest.raises(MnistlabError, match=r"config\.json: not a JSON object"):
        folder.read_config(run)
