"""Comparison charts: accuracy per model, accuracy against size/compute, curves."""

from __future__ import annotations

import os
from pathlib import Path

from .common import _plt, _save

__all__ = ["plot_accuracy", "plot_overlay", "plot_tradeoff"]


def plot_accuracy(rows: list[dict], path: str | os.PathLike) -> Path:
    plt = _plt()
    labels = [r["label"] for r in rows]
    means = [100 * r["test_acc_mean"] for r in rows]
    stds = [100 * (r["test_acc_std"] or 0.0) for r in rows]  # None: one seed, no bar
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rows) + 2), 4))
    spread = any(r["test_acc_std"] is not None for r in rows)
    bars = ax.bar(range(len(rows)), means, yerr=stds if spread else None, capsize=4, color="C0")
    for bar, m in zip(bars, means, strict=True):
        ax.annotate(
            f"{m:.2f}%",
            (bar.get_x() + bar.get_width() / 2, m),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 4),
            textcoords="offset points",
        )
    ax.set_xticks(range(len(rows)), labels, rotation=20 if len(rows) > 4 else 0, ha="right")
    low = min(m - s for m, s in zip(means, stds, strict=True))
    ax.set_ylim(max(0.0, low - 1.0), 100.0)
    title = "Test accuracy (mean ± std over seeds)" if spread else "Test accuracy (one seed)"
    ax.set(ylabel="test accuracy (%)", title=title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_tradeoff(rows: list[dict], path: str | os.PathLike) -> Path:
    plt = _plt()
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in (
        (axes[0], "params", "parameters"),
        (axes[1], "mflops", "MFLOPs per image"),
    ):
        for i, r in enumerate(rows):
            ax.errorbar(
                r[key],
                100 * r["test_acc_mean"],
                yerr=None if r["test_acc_std"] is None else 100 * r["test_acc_std"],
                fmt="o",
                color=f"C{i % 10}",
                label=r["label"],
                capsize=3,
            )
            ax.annotate(
                r["label"],
                (r[key], 100 * r["test_acc_mean"]),
                fontsize=8,
                xytext=(5, 5),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short ranges
        ax.set(xlabel=f"{label} (log scale)", title=f"Accuracy against {label}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    fig.tight_layout()
    return _save(fig, path)


def plot_overlay(rows: list[dict], path: str | os.PathLike) -> Path:
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.5))
    splits = set()
    for i, r in enumerate(rows):
        for j, c in enumerate(r["curves"]):
            splits.add(c["split"])
            ax.plot(
                c["epochs"],
                [100 * a for a in c["acc"]],
                marker="o",
                ms=3,
                color=f"C{i % 10}",
                alpha=1.0 if j == 0 else 0.5,
                label=r["label"] if j == 0 else None,
            )
    which = (
        "validation" if splits == {"val"} else "held-out (validation, or test without a val split)"
    )
    ax.set(xlabel="epoch", ylabel="accuracy (%)", title=f"All runs: {which} accuracy per epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)
