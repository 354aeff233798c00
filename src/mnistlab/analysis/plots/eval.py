"""Evaluation pictures: confusion matrix and reliability diagram."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .common import _plt, _save

__all__ = ["plot_confusion", "plot_reliability"]


def plot_confusion(cm: np.ndarray, class_names, path: str | os.PathLike, title: str = "") -> Path:
    """Counts in each cell; colour is the share of the true class (row), so errors show."""
    plt = _plt()
    cm = np.asarray(cm)
    k = len(class_names)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = 5.5 if k <= 10 else 0.5 * k
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    short = [str(c)[:10] for c in class_names]
    ax.set_xticks(range(k), short, rotation=45 if max(map(len, short)) > 2 else 0, ha="right")
    ax.set_yticks(range(k), short)
    ax.set(xlabel="predicted class", ylabel="true class", title=title or "Confusion matrix")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    return _save(fig, path)


def plot_reliability(cal: dict, path: str | os.PathLike) -> Path:
    """Accuracy against confidence per bin, with the counts per bin underneath."""
    plt = _plt()
    bins = cal["bins"]
    centers = np.array([(b["low"] + b["high"]) / 2 for b in bins])
    width = bins[0]["high"] - bins[0]["low"]
    acc = np.array([b["accuracy"] for b in bins])
    conf = np.array([b["confidence"] for b in bins])
    counts = np.array([b["count"] for b in bins])
    used = counts > 0
    fig, (ax, ax_n) = plt.subplots(
        2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.bar(centers[used], acc[used], width=width * 0.9, color="C0", label="accuracy")
    low, gap = np.minimum(acc, conf), np.abs(conf - acc)
    ax.bar(
        centers[used],
        gap[used],
        bottom=low[used],
        width=width * 0.9,
        color="none",
        edgecolor="C3",
        hatch="//",
        label="gap to mean confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(ylabel="accuracy", ylim=(0, 1), title=f"Reliability (ECE {100 * cal['ece']:.2f}%)")
    ax.legend(loc="upper left")
    ax_n.bar(centers, counts, width=width * 0.9, color="0.5")
    ax_n.set_yscale("log")
    ax_n.set(xlabel="confidence (top-class probability)", ylabel="images", xlim=(0, 1))
    fig.tight_layout()
    return _save(fig, path)
