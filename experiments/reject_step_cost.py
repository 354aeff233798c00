"""The training step with and without outliers, interleaved in one process, so that a
busy machine slows both alike: median seconds per step, their ratio, and the ratio of
whole recipes (steps per epoch x epochs) that follows (docs/trust.md).

    python experiments/reject_step_cost.py [--rounds 7] [--steps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from mnistlab.data.loader import load_data
from mnistlab.data.outliers import outlier_images
from mnistlab.train.build import build_training, make_train_loader
from mnistlab.train.config import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="experiments/reject_step_cost.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)  # 1: two busy cores oversubscribed mislead less
    data = load_data("mnist", None, "cpu", 5000, 0)
    t0 = time.perf_counter()
    outlier_images("train")  # made once per training run, before the first epoch
    made = time.perf_counter() - t0
    recipes = {"before": TrainConfig(outliers=0.0, epochs=10), "default": TrainConfig()}
    built = {}
    for name, cfg in recipes.items():
        loader = make_train_loader(cfg, *data.train, 0.1307, 0.3081)
        model, opt, _sched, loss_fn = build_training(
            cfg, 0.1307, 0.3081, list("0123456789"), len(loader), torch.device("cpu")
        )
        built[name] = (loader, model, opt, loss_fn, cfg)
    times = {name: [] for name in recipes}
    for r in range(args.rounds):
        for name, (loader, model, opt, loss_fn, _) in built.items():
            batches = loader.batches(r + 1, stop=args.steps)
            t = time.perf_counter()
            for x, y in batches:  # the loop's work: batch, forward, loss, backward, step
                loss = loss_fn(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            times[name].append((time.perf_counter() - t) / args.steps)
    step = {name: statistics.median(ts) for name, ts in times.items()}
    epochs = {name: cfg.epochs for name, (*_, cfg) in built.items()}
    out = {
        "seconds_per_step": step,
        "step_ratio": step["default"] / step["before"],
        "recipe_ratio": step["default"] * epochs["default"] / (step["before"] * epochs["before"]),
        "outliers_made_seconds": made,
        "threads": torch.get_num_threads(),
    }
    from pathlib import Path

    from reject_training import cpu_name

    out["cpu"] = cpu_name()
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
