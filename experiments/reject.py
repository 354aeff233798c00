"""Choosing the reject option: which score tells digits from non-digits (docs/trust.md).

For each run folder given, scores on validation data only: MNIST's validation split
(the digits), our validation outliers (``data/outliers.py``, fonts the training
outliers never used), noise, and the development real-world sets (synthetic
handwriting made from MNIST validation digits, and UCI's dev scans) pushed through
``predict``'s preprocessing. Two scores are compared on each model: the maximum
softmax probability (MSP, Hendrycks & Gimpel 2017) and the energy score
(logsumexp of the logits, Liu et al. 2020), both after the run's temperature.

    python experiments/reject.py runs/base runs/oe [--out experiments/reject.json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from mnistlab.analysis.evaluate import predict_logits
from mnistlab.data.loader import load_data
from mnistlab.data.outliers import outlier_images
from mnistlab.data.realworld import realworld_sets
from mnistlab.runs.checkpoint import load_checkpoint
from mnistlab.serve.preprocess import to_mnist


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties half: the Mann-Whitney U."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def noise_images(n: int = 1000, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    uniform = rng.integers(0, 256, (n // 2, 28, 28))
    gauss = np.clip(rng.normal(64, 64, (n - n // 2, 28, 28)), 0, 255)
    return np.uint8(np.concatenate([uniform, gauss]))


def scores(model, images: np.ndarray) -> dict:
    meta = model.meta
    z = predict_logits(model, torch.from_numpy(images)[:, None], meta.mean, meta.std).double()
    return {
        "msp": torch.softmax(z, 1).max(1).values.numpy(),
        "energy": torch.logsumexp(z, 1).numpy(),
        "pred": z.argmax(1).numpy(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out")
    args = ap.parse_args()
    val_x, val_y = load_data("mnist", None, "cpu", val_size=5000, seed=0).val
    val_x, val_y = val_x[:, 0].numpy(), val_y.numpy()
    outliers = outlier_images("val")
    noise = noise_images()
    real = {
        s.name: (np.stack([to_mnist(im) for im in s.images]), s.labels)
        for s in realworld_sets("dev", n=300)
    }
    results = {}
    for run in args.runs:
        model, _ = load_checkpoint(run, "cpu")
        torch.set_grad_enabled(False)
        d, o, nz = scores(model, val_x), scores(model, outliers), scores(model, noise)
        rw = {k: (scores(model, x), y) for k, (x, y) in real.items()}
        row = {}
        for key in ("msp", "energy"):
            # thresholds at the quantiles of MNIST validation digits' scores
            cut = {q: float(np.quantile(d[key], q)) for q in (0.001, 0.002, 0.005, 0.01)}
            row[key] = {
                "auroc_outliers": auroc(d[key], o[key]),
                "auroc_noise": auroc(d[key], nz[key]),
                "auroc_real_vs_outliers": auroc(
                    np.concatenate([s[key] for s, _ in rw.values()]), o[key]
                ),
                "at": {
                    f"{q:.1%} of val digits": {
                        "threshold": t,
                        "outliers_caught": float((o[key] < t).mean()),
                        "noise_caught": float((nz[key] < t).mean()),
                        "real_rejected": {
                            k: float((s[key] < t).mean()) for k, (s, _) in rw.items()
                        },
                    }
                    for q, t in cut.items()
                },
            }
        row["val_acc"] = float((d["pred"] == val_y).mean())
        row["real_acc"] = {k: float((s["pred"] == y).mean()) for k, (s, y) in rw.items()}
        results[run] = row
        print(run, json.dumps(row, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
