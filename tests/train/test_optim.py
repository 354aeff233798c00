"""Optimisers and schedules by name (``train/optim.py``): the shortest one-cycle schedule runs."""

from __future__ import annotations

import math

from mnistlab import create_model
from mnistlab.train.optim import make_optimizer, make_scheduler


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
