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

# before: the default recipe as it was (10 epochs, no outliers); after: as it is
RECIPES = {
    "before: 10 epochs, no outliers": ["--outliers", "0", "--epochs", "10"],
    "default: 11 epochs, outliers": [],
}
SHORT = dict(zip(("before", "default"), RECIPES, strict=True))


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
    ap.add_argument("--recipes", nargs="+", choices=list(SHORT), default=list(SHORT))
    ap.add_argument("--append", action="store_true", help="add to the runs already in --out")
    args = ap.parse_args()
    out_dir = Path(tempfile.mkdtemp(prefix="reject_training_"))
    rows = {name: [] for name in RECIPES}
    if args.append and Path(args.out).exists():
        for name, rec in json.loads(Path(args.out).read_text())["recipes"].items():
            rows[name] = rec["runs"]
    for seed in args.seeds:  # recipes alternate, so a slower minute hits both alike
        for name, flags in ((SHORT[r], RECIPES[SHORT[r]]) for r in args.recipes):
            run_name = f"{'oe' if not flags else 'plain'}-{seed}"
            cmd = [
                sys.executable,  # this environment's mnistlab, whatever PATH holds
                "-m",
                "mnistlab",
                "train",
                "--seed",
                str(seed),
                *flags,
                "--out-dir",
                str(out_dir),
                "--name",
                run_name,
            ]
            text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            seconds = float(re.search(r"training time ([\d.]+) s", text).group(1))
            row = {"seed": seed, "train_seconds": seconds, **test_figures(out_dir / run_name)}
            rows[name].append(row)
            print(name, row, flush=True)
            _write(rows, args.out)


def _write(rows: dict, out: str) -> None:
    """The runs so far and their summary, written after each run."""
    rows = {name: rs for name, rs in rows.items() if rs}
    summary = {
        name: {
            "mean_test_acc": statistics.mean(r["test_acc"] for r in rs),
            "mean_test_acc_rejects_wrong": statistics.mean(r["test_acc_rejects_wrong"] for r in rs),
            "median_train_seconds": statistics.median(r["train_seconds"] for r in rs),
            "runs": rs,
        }
        for name, rs in rows.items()
    }
    before, default = RECIPES
    # the time ratio from the seeds both recipes trained, side by side
    both = {r["seed"] for r in rows.get(before, [])} & {r["seed"] for r in rows.get(default, [])}
    secs = (
        {n: [r["train_seconds"] for r in rows[n] if r["seed"] in both] for n in (before, default)}
        if both
        else None
    )
    ratio = statistics.median(secs[default]) / statistics.median(secs[before]) if secs else None
    doc = {
        "cpu": cpu_name(),
        "training_time_ratio": ratio,
        "ratio_seeds": sorted(both),
        "recipes": summary,
    }
    Path(out).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
