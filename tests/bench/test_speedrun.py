"""The speedrun: step budgets finer than an epoch, Adam's betas, the preset and its bench."""

from __future__ import annotations

import json
import math
import os
import signal
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from mnistlab import TrainConfig, create_model, fit
from mnistlab.cli import main
from mnistlab.cli.progress import format_config
from mnistlab.data.loader import DeviceLoader
from mnistlab.errors import UsageError
from mnistlab.models import count_params
from mnistlab.runs import read_metrics
from mnistlab.train import Reporter
from mnistlab.train.fitting import build_training

# 320 training images in batches of 64: 5 steps per epoch
SMALL = dict(
    model="speedrun",
    batch_size=64,
    train_subset=320,
    val_size=500,
    augment="none",
    threads=1,
    log_every=1,
)


def _cfg(tmp_path, name: str, **kw) -> TrainConfig:
    return TrainConfig(**{**SMALL, **kw}, out_dir=str(tmp_path), run_name=name)


def _weights(run) -> dict:
    return load_file(str(run / "last.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _strip(records: list[dict]) -> list[dict]:
    drop = {"train_seconds", "eval_seconds"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


def test_the_speedrun_model_has_the_hand_counted_parameters():
    # conv1 8x1x5x5, conv2 32x8x5x5, fc1 512x256 (no biases), bn2 2x32, bn3 2x256,
    # fc2 256x10+10
    assert count_params(create_model("speedrun")) == 200 + 6400 + 64 + 131072 + 512 + 2570
    assert create_model("speedrun")(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_the_preset_trains_a_fixed_budget_of_under_an_epoch():
    cfg = TrainConfig.from_preset("speedrun").validate()
    assert (cfg.model, cfg.batch_size, cfg.steps, cfg.lr) == ("speedrun", 128, 220, 0.02)
    assert (cfg.beta1, cfg.beta2, cfg.label_smoothing, cfg.augment) == (0.7, 0.9, 0.2, "none")
    steps_per_epoch = (60000 - cfg.val_size) // cfg.batch_size  # 429
    assert cfg.total_epochs(steps_per_epoch) == 1
    assert cfg.epoch_steps(1, steps_per_epoch) == 220 < steps_per_epoch


def test_the_printed_config_shows_the_step_budget_not_the_unused_epochs():
    shown = format_config(TrainConfig.from_preset("speedrun")).split()
    assert "steps=220" in shown and not any(w.startswith("epochs=") for w in shown)
    assert "epochs=3" in format_config(TrainConfig(epochs=3)).split()


def test_epoch_steps_cut_only_the_last_epoch():
    cfg = TrainConfig(steps=12)
    assert cfg.total_epochs(5) == 3
    assert [cfg.epoch_steps(e, 5) for e in (1, 2, 3)] == [5, 5, 2]
    assert TrainConfig(epochs=4).total_epochs(5) == 4
    assert TrainConfig(epochs=4).epoch_steps(4, 5) == 5


def test_the_loader_stops_at_stop_with_the_batches_a_full_pass_yields():
    x = torch.arange(40 * 784, dtype=torch.int64).remainder(256).to(torch.uint8)
    x, y = x.reshape(40, 1, 28, 28), torch.arange(40)
    loader = DeviceLoader(x, y, 8, 0.1, 0.3, shuffle=True, seed=3, drop_last=True)
    full = list(loader.batches(2))
    cut = list(loader.batches(2, start=1, stop=3))
    assert len(full) == 5 and len(cut) == 2
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(full[1:3], cut, strict=True)
    )


@pytest.mark.slow
def test_a_step_budget_of_whole_epochs_trains_exactly_what_epochs_would(tmp_path):
    by_epochs = fit(_cfg(tmp_path, "epochs", epochs=2))
    by_steps = fit(_cfg(tmp_path, "steps", steps=10))
    assert _same(_weights(by_epochs.run_dir), _weights(by_steps.run_dir))
    assert _strip(read_metrics(by_epochs.run_dir)) == _strip(read_metrics(by_steps.run_dir))


@pytest.mark.slow
def test_a_step_budget_cuts_the_last_epoch_and_anneals_over_those_steps(tmp_path):
    result = fit(_cfg(tmp_path, "cut", steps=7, lr=0.02))
    assert [r["steps"] for r in result.history] == [5, 2]
    doc = json.loads((result.run_dir / "last.json").read_text())
    assert doc["resume"]["done"] is True
    # the same 7 steps by hand: epoch 1 whole, then the first 2 batches of epoch 2
    cfg = _cfg(tmp_path, "hand", steps=7, lr=0.02)
    from mnistlab.data.loader import load_data
    from mnistlab.train.fitting import make_train_loader

    data = load_data("mnist", None, "cpu", cfg.val_size, cfg.seed, cfg.train_subset)
    info = data.info
    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    loader = make_train_loader(cfg, *data.train, info.mean, info.std)
    model, opt, sched, loss_fn = build_training(
        cfg, info.mean, info.std, info.classes, len(loader), torch.device("cpu")
    )
    model.train()
    used = []
    for epoch, stop in ((1, None), (2, 2)):
        for x, y in loader.batches(epoch, stop=stop):
            used.append(opt.param_groups[0]["lr"])
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    # one-cycle over exactly 7 steps: its last step uses max_lr / div_factor / final_div_factor
    assert sched.total_steps == 7 and len(used) == 7
    assert used[0] == pytest.approx(0.02 / 25) and used[-1] == pytest.approx(0.02 / 25 / 1e4)
    saved = _weights(result.run_dir)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


class _CtrlCAt(Reporter):
    """Sends this process a real SIGINT at one step: fit stops after it and saves."""

    def __init__(self, epoch: int, step: int):
        self.at, self.epoch = (epoch, step), 0

    def epoch_start(self, epoch, steps, start_step):
        self.epoch = epoch

    def step(self, step):
        if (self.epoch, step) == self.at:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_ctrl_c_inside_the_cut_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    ref = fit(_cfg(tmp_path, "ref", steps=8))
    cut = fit(_cfg(tmp_path, "cut", steps=8), reporter=_CtrlCAt(2, 1))
    assert cut.interrupted and cut.position["epoch"] == 2 and cut.position["step"] == 1
    done = fit(replace(_cfg(tmp_path, "unused")), resume=cut.run_dir)
    assert not done.interrupted and [r["steps"] for r in done.history] == [5, 3]
    assert _same(_weights(ref.run_dir), _weights(cut.run_dir))
    assert _strip(read_metrics(ref.run_dir)) == _strip(read_metrics(cut.run_dir))


def test_betas_reach_adam_and_adamw_and_are_checked():
    classes, cpu = list("0123456789"), torch.device("cpu")

    def betas_over_steps(**kw) -> list[tuple]:
        cfg = TrainConfig(**kw).validate()
        _, opt, sched, _ = build_training(cfg, 0.13, 0.31, classes, 8, cpu, epochs=1)
        seen = []
        for _ in range(8):
            seen.append(tuple(opt.param_groups[0]["betas"]))
            opt.step()  # no gradients: only the schedule moves
            if sched is not None:
                sched.step()
        return seen

    for name in ("adam", "adamw"):
        # a beta1 given is held, under one-cycle as under any schedule
        for schedule in ("onecycle", "cosine", "none"):
            seen = betas_over_steps(optimizer=name, beta1=0.7, beta2=0.9, schedule=schedule)
            assert set(seen) == {(0.7, 0.9)}, schedule
        # none given: 0.9, which one-cycle cycles from 0.95 down to 0.85 as torch does
        seen = betas_over_steps(optimizer=name, beta2=0.9)
        assert seen[0] == (0.95, 0.9) and min(b[0] for b in seen) == pytest.approx(0.85)
        assert set(betas_over_steps(optimizer=name, schedule="cosine")) == {(0.9, 0.999)}
    for bad in ({"beta1": 1.0}, {"beta2": -0.1}, {"beta1": math.nan}, {"steps": 0}):
        with pytest.raises(UsageError):
            TrainConfig(**bad).validate()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--epochs", "2", "--steps", "5"], "--epochs and --steps both set how long to train"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--beta1", "1"], "--beta1 must be in [0, 1)"),
    ],
)
def test_bad_budgets_and_betas_are_one_line_errors(args, message, tmp_path, capsys):
    assert main(["train", *args, "--dry-run", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_epochs_on_the_command_line_replace_the_presets_step_budget(tmp_path):
    out = str(tmp_path)
    assert main(["train", "-p", "speedrun", "--epochs", "1", "--dry-run", "--out-dir", out]) == 0
    (run,) = tmp_path.iterdir()
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["steps"], cfg["epochs"], cfg["preset"]) == (None, 1, "speedrun")


@pytest.mark.slow
def test_the_quick_speedrun_bench_reports_its_runs_the_canonical_ratio_and_the_peak(tmp_path):
    out = tmp_path / "results.md"
    assert main(["bench", "--quick", "--only", "speedrun", "--out", str(out)]) == 0
    s = json.loads(out.with_suffix(".json").read_text())["speedrun"]
    text = out.read_text()
    assert s["steps"] == 4 and s["images"] == 4 * 128 and len(s["runs"]) == 1
    for r in (s["cold"], *s["runs"]):
        assert r["seconds"] > 0 and 0 <= r["test_acc"] <= 1 and r["steps"] == 4
        assert f"| {r['seconds']:.2f} s | {100 * r['test_acc']:.2f}% |" in text or r is s["cold"]
    assert s["median"] == s["runs"][0]["seconds"]
    c = s["canonical"]
    assert c["preset"] == "seed003-example" and c["seconds"] > 0
    assert s["ratio"] == pytest.approx(c["seconds"] / s["median"])
    # GFLOP/s: forward+backward as 3x the forward FLOPs, over the images and the median
    assert s["gflops"] == pytest.approx(3 * s["fwd_mflops"] * 1e6 * s["images"] / s["median"] / 1e9)
    peak = s["sgemm"]
    assert peak["n"] == 512 and peak["gflops"] == pytest.approx(2 * 512**3 / peak["seconds"] / 1e9)
    assert s["share_of_peak"] == pytest.approx(s["gflops"] / peak["gflops"])
    assert "## 7. Speedrun" in text and f"**{s['ratio']:.0f}x**" in text


def test_compare_entries_take_steps_and_betas_and_epochs_replace_a_step_budget():
    from mnistlab.analysis.compare import parse_entry

    cfg = parse_entry("speedrun", "own", None, {}).config
    assert (cfg.steps, cfg.beta1) == (220, 0.7)
    cfg = parse_entry("speedrun", "own", None, {"epochs": 2}).config  # compare --epochs 2
    assert (cfg.steps, cfg.epochs) == (None, 2)
    cfg = parse_entry("speedrun:steps=50", "own", None, {"epochs": 2}).config
    assert (cfg.steps, cfg.epochs) == (50, 2)
    cfg = parse_entry("fast:beta1=0.8,beta2=0.95", "shared", None, {}).config
    assert (cfg.beta1, cfg.beta2) == (0.8, 0.95)
