"""A run whose loss turns NaN stops at once, says what to change and writes no NaN: not in
the weights, not in any JSON it leaves."""

from __future__ import annotations

import json
import math

import pytest

from mnistlab import TrainConfig, create_model, fit, save_checkpoint
from mnistlab.errors import MnistlabError
from mnistlab.runs import folder
from mnistlab.train.optim import make_optimizer
from tests.support.cli import error_line, run_main


def _strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as every other JSON reader does."""

    def refuse(name):
        raise ValueError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=refuse)


DIVERGES = [  # plain SGD at lr 10 with momentum: the loss overflows within a few steps
    *["--model", "linear", "--optimizer", "sgd", "--lr", "10", "--momentum", "0.9"],
    *["--schedule", "none", "--augment", "none", "--label-smoothing", "0"],
    *["--train-subset", "1024", "--val-size", "256", "--batch-size", "64", "--epochs", "2"],
    *["--log-every", "2", "--threads", "1", "--outliers", "0"],
]


def test_a_diverging_run_stops_at_once_says_what_to_change_and_writes_no_nan(tmp_path):
    proc = run_main("train", *DIVERGES, "--out-dir", str(tmp_path), "--name", "div")
    line = error_line(proc, 1)
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
    again = error_line(run_main("train", "--resume", str(run)), 1)
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


def test_json_written_by_training_never_holds_a_bare_nan(tmp_path):
    line = folder.json_line({"type": "step", "loss": float("nan"), "lr": float("inf")})
    assert _strict_json(line) == {"type": "step", "loss": None, "lr": None}
    path = save_checkpoint(tmp_path / "ck", create_model("linear"), {"metrics": {"x": math.nan}})
    assert _strict_json(path.read_text())["metrics"] == {"x": None}
