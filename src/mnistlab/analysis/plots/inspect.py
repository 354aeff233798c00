"""Pictures of a network's insides: the input, feature maps and kernels."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .common import _plt, _save

__all__ = ["plot_input", "plot_kernels", "plot_maps"]

MAX_PANELS = 64


def plot_input(pixels: np.ndarray, probs: torch.Tensor, names, path, label: str = "") -> Path:
    """The 28x28 input beside the model's probability for each class."""
    plt = _plt()
    fig, (ax_img, ax_p) = plt.subplots(1, 2, figsize=(8, 3.2), gridspec_kw={"width_ratios": [1, 2]})
    ax_img.imshow(pixels, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax_img.set_title(f"input (28x28){' · true ' + label if label else ''}")
    ax_img.axis("off")
    p = probs.numpy()
    colors = ["C2" if i == p.argmax() else "C0" for i in range(len(p))]
    ax_p.bar(range(len(p)), p, color=colors)
    ax_p.set_xticks(
        range(len(p)), [str(n)[:8] for n in names], rotation=45 if len(str(names[0])) > 2 else 0
    )
    ax_p.set(
        ylim=(0, 1),
        ylabel="probability",
        title=f"prediction: {names[int(p.argmax())]} ({p.max():.1%})",
    )
    fig.tight_layout()
    return _save(fig, path)


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 8 if n <= 32 else 16)
    return math.ceil(n / cols), cols


def plot_maps(fmap: torch.Tensor, title: str, path: str | os.PathLike) -> Path:
    """One panel per channel of a ``(C, H, W)`` activation, each on its own colour scale."""
    plt = _plt()
    c = min(fmap.shape[0], MAX_PANELS)
    rows, cols = _grid(c)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.25 * rows + 0.6), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < c:
            ax.imshow(fmap[i].numpy(), cmap="viridis", interpolation="nearest")
            ax.set_title(f"ch {i}", fontsize=7)
    shown = f" (first {c} of {fmap.shape[0]} channels)" if c < fmap.shape[0] else ""
    fig.suptitle(title + shown, fontsize=10)
    _tight_below_title(fig)
    return _save(fig, path)


def plot_kernels(weight: torch.Tensor, title: str, path: str | os.PathLike) -> Path:
    """Kernels ``(C_out, C_in, k, k)``: one row per output channel (up to 16 input channels),
    on a shared symmetric colour scale so signs compare across panels."""
    plt = _plt()
    c_out, c_in = min(weight.shape[0], 32), min(weight.shape[1], 16)
    w = weight[:c_out, :c_in]
    lim = float(w.abs().max()) or 1.0
    if c_in > 1:  # a later layer: up to 32 x 16 kernels, drawn as one picture
        return _kernel_mosaic(w.numpy(), lim, title, path)
    rows, cols = _grid(c_out)  # a first layer: its filters in a grid, each titled
    fig, axes = plt.subplots(
        rows, cols, figsize=(0.9 * cols + 0.8, 0.95 * rows + 0.6), squeeze=False
    )
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < c_out:
            ax.imshow(w[i, 0].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(f"{i}", fontsize=6)
    fig.suptitle(f"{title} (red +, blue -)", fontsize=10)
    _tight_below_title(fig)
    return _save(fig, path)


def _kernel_mosaic(w: np.ndarray, lim: float, title: str, path) -> Path:
    """``(C_out, C_in, kh, kw)`` kernels as one image, a row per output channel and a
    column per input channel, a blank line between them. One picture, not C_out x C_in
    subplots: those took 12 s to lay out for 32 x 16 kernels, this a fraction of one."""
    plt = _plt()
    c_out, c_in, kh, kw = w.shape
    mosaic = np.full((c_out * (kh + 1) - 1, c_in * (kw + 1) - 1), np.nan)  # NaN: the gaps
    for i in range(c_out):
        for j in range(c_in):
            mosaic[i * (kh + 1) : i * (kh + 1) + kh, j * (kw + 1) : j * (kw + 1) + kw] = w[i, j]
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("white")
    fig, ax = plt.subplots(figsize=(0.45 * c_in + 1.2, 0.45 * c_out + 1.0))
    ax.imshow(mosaic, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks([j * (kw + 1) + (kw - 1) / 2 for j in range(c_in)], range(c_in), fontsize=6)
    ax.set_yticks([i * (kh + 1) + (kh - 1) / 2 for i in range(c_out)], range(c_out), fontsize=6)
    ax.set(xlabel="input channel", ylabel="output channel")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"{title} (red +, blue -)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _tight_below_title(fig) -> None:
    # keep half an inch for the suptitle whatever the figure's height
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / height))
