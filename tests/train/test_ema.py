"""The weights' EMA (``--ema``): its arithmetic by hand, that it is what a run
evaluates and saves, and that a run stopped by Ctrl-C resumes it exactly."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from mnistlab import TrainConfig, fit
from mnistlab.errors import UsageError
from mnistlab.models import create_model
from mnistlab.runs import read_metrics
from mnistlab.train.ema import WeightAverage
from mnistlab.train.fitting import Reporter

SMALL = dict(
    model="cnn", train_subset=1024, val_size=256, batch_size=64, augment="none", log_every=4
)


def test_the_average_follows_the_formula_with_its_warm_up_cap():
    model = nn.Sequential(nn.Linear(2, 1, bias=False), nn.BatchNorm1d(1))
    model[0].weight.data[:] = torch.tensor([[1.0, 2.0]])
    avg = WeightAverage(model, decay=0.9)
    model[0].weight.data[:] = torch.tensor([[3.0, 6.0]])
    model[1].num_batches_tracked += 5
    avg.update(model)
    # first update: decay capped at (1 + 1) / (10 + 1) = 2/11
    d = 2 / 11
    want = d * torch.tensor([1.0, 2.0]) + (1 - d) * torch.tensor([3.0, 6.0])
    assert torch.allclose(avg.model[0].weight[0], want)
    assert int(avg.model[1].num_batches_tracked) == 5  # counters are copied, not averaged
    for _ in range(100):
        avg.update(model)
    assert avg.current_decay() == 0.9  # (1 + n) / (10 + n) > 0.9 once n > 80
    # the trained weights are not touched, and the average has no gradients
    assert torch.equal(model[0].weight[0], torch.tensor([3.0, 6.0]))
    assert not any(p.requires_grad for p in avg.model.parameters())


@pytest.mark.parametrize("value", [1.0, -0.1, 2])
def test_a_decay_outside_0_1_is_refused(value):
    with pytest.raises(UsageError) as exc:
        TrainConfig(ema=value).validate()
    assert exc.value.cli_message().startswith("--ema must be in [0, 1)")


@pytest.mark.slow
def test_the_run_evaluates_and_saves_the_average_not_the_trained_weights(tmp_path):
    result = fit(TrainConfig(**SMALL, epochs=1, ema=0.9, out_dir=str(tmp_path), run_name="e"))
    run = result.run_dir
    best, last = load_file(run / "best.safetensors"), load_file(run / "last.safetensors")
    state = load_file(run / "last.state.safetensors")
    # best holds the average (as saved in the resume state), last the trained weights
    assert all(torch.equal(best[k], state["ema." + k]) for k in best)
    assert not torch.equal(best["conv1.weight"], last["conv1.weight"])
    # and the epoch's val accuracy is the average's: recompute it from best
    from mnistlab import load_checkpoint
    from mnistlab.data import load_data

    model, _ = load_checkpoint(run / "best.json")
    data = load_data("mnist", None, "cpu", 256, 0, 1024)
    x, y = data.val
    mean, std = model.meta.mean, model.meta.std
    with torch.no_grad():
        acc = (model((x.float() / 255 - mean) / std).argmax(1) == y).double().mean().item()
    assert acc == pytest.approx(result.history[-1]["val_acc"])


class _CtrlCAt(Reporter):
    """Presses Ctrl-C (a real SIGINT to this process) after a given step."""

    def __init__(self, step: int):
        self.at, self.sent = step, False

    def step(self, step: int) -> None:
        if step == self.at and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_ctrl_c_and_resume_end_with_the_average_of_an_uninterrupted_run(tmp_path):
    cfg = TrainConfig(**SMALL, epochs=2, ema=0.95, out_dir=str(tmp_path), threads=1)
    ref = fit(TrainConfig(**{**cfg.to_dict(), "run_name": "ref"}))
    cut = fit(TrainConfig(**{**cfg.to_dict(), "run_name": "cut"}), reporter=_CtrlCAt(5))
    assert cut.interrupted and cut.position["step"] == 5
    done = fit(cfg, resume=cut.run_dir)
    assert not done.interrupted
    for stem in ("best", "last", "last.state"):
        a = load_file(ref.run_dir / f"{stem}.safetensors")
        b = load_file(cut.run_dir / f"{stem}.safetensors")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("rng")), stem

    def strip(records):
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in records]

    assert strip(read_metrics(ref.run_dir)) == strip(read_metrics(cut.run_dir))


def test_the_best_preset_keeps_an_average():
    cfg = TrainConfig.from_preset("best")
    assert 0 < cfg.ema < 1 and cfg.val_size == 0
    assert create_model(cfg.model) is not None
