"""What the reject option costs in training: the default recipe with and without its
outliers, side by side in one run, 3 seeds each (docs/trust.md, "Training cost").

Each run is a real `mnistlab train` (so calibration fits each its threshold); the
figures are its training time (epochs only, as `train` prints it), its test
accuracy, and its test accuracy counting a digit answered "not a digit" as wrong.

    python experiments/reject_training.py [--seeds 0 1 2] [--out experiments/reject_training.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# before: the default recipe as it was (10 epochs, no outliers); after: as it is
RECIPES = {
    "before: 10 epochs, no outliers": ["--outliers", "0", "--epochs", "10"],
    "default: 11 epochs, outliers": [],
}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def test_figures(run: Path) -> dict:
    from mnistlab.data import load_split
    from mnistlab.serve.predict import load_predictor

    predictor = load_predictor(run)
    x, y = load_split("mnist", "test")
    probs, _, kept = predictor.judge(x[:, 0].numpy())
    right = probs.argmax(1) == y.numpy()
    return {
        "test_acc": float(right.mean()),
        "test_acc_rejects_wrong": float((right & kept).mean()),
        "test_rejected": float(1 - kept.mean()),
        "reject_threshold": predictor.reject_threshold,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="experiments/reject_training.json")
    args = ap.parse_args()
    out_dir = Path(tempfile.mkdtemp(prefix="reject_training_"))
    rows = {name: [] for name in RECIPES}
    for seed in args.seeds:  # recipes alternate, so a slower minute hits both alike
        for name, flags in RECIPES.items():
            run_name = f"{'oe' if not flags else 'plain'}-{seed}"
            cmd = ["mnistlab", "train", "--seed", str(seed), *flags, "--out-dir", str(out_dir), "--name", run_name]
            text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            seconds = float(re.search(r"training time ([\d.]+) s", text).group(1))
            row = {"seed": seed, "train_seconds": seconds, **test_figures(out_dir / run_name)}
            rows[name].append(row)
            print(name, row, flush=True)
    summary = {
        name: {
            "mean_test_acc": statistics.mean(r["test_acc"] for r in rs),
            "mean_test_acc_rejects_wrong": statistics.mean(r["test_acc_rejects_wrong"] for r in rs),
            "median_train_seconds": statistics.median(r["train_seconds"] for r in rs),
            "runs": rs,
        }
        for name, rs in rows.items()
    }
    names = list(RECIPES)
    ratio = summary[names[1]]["median_train_seconds"] / summary[names[0]]["median_train_seconds"]
    doc = {"cpu": cpu_name(), "training_time_ratio": ratio, "recipes": summary}
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k != "recipes"}), np.round(ratio, 3))


if __name__ == "__main__":
    sys.exit(main())
