"""Pictures: training curves and sample grids, written atomically as PNG."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..._io import atomic_write

__all__ = ["plot_curves", "plot_grid", "plot_samples", "write_curves"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    plt = _plt()
    try:
        return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    finally:
        plt.close(fig)


def plot_curves(
    history: list[dict], records: list[dict], path: str | os.PathLike, steps_per_epoch: int
) -> Path:
    """Loss and accuracy per epoch (train/val/test), with the logged step losses behind."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [h["epoch"] for h in history]
    steps = [r for r in records if r.get("type") == "step"]
    if steps:
        # place step logs on the epoch axis: epoch e's step s is at e - 1 + s/steps
        xs = [r["epoch"] - 1 + r["step"] / steps_per_epoch for r in steps]
        ax_loss.plot(
            xs, [r["loss"] for r in steps], color="0.75", lw=1, label="train (logged steps)"
        )
        ax_acc.plot(
            xs, [100 * r["acc"] for r in steps], color="0.75", lw=1, label="train (logged steps)"
        )
    styles = {"train": ("C0", "o"), "val": ("C1", "s"), "test": ("C2", "^")}
    for split, (color, marker) in styles.items():
        if history and f"{split}_loss" in history[0]:
            ax_loss.plot(
                epochs,
                [h[f"{split}_loss"] for h in history],
                color=color,
                marker=marker,
                label=split,
            )
            ax_acc.plot(
                epochs,
                [100 * h[f"{split}_acc"] for h in history],
                color=color,
                marker=marker,
                label=split,
            )
    ax_loss.set(title="Loss", xlabel="epoch", ylabel="loss")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    if history:
        accs = [100 * h[k] for h in history for k in ("train_acc", "val_acc", "test_acc") if k in h]
        ax_acc.set_ylim(max(0.0, min(accs) - 1.0), 100.0)
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # no curves (no metrics yet): no legend
            ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def write_curves(run_dir: str | os.PathLike) -> Path:
    """Draw a run folder's ``curves.png`` from its ``metrics.jsonl``."""
    from ...runs.folder import read_metrics

    run = Path(run_dir)
    records = read_metrics(run)
    history = [r for r in records if r.get("type") == "epoch"]
    # steps per epoch places the step logs; runs from before it was recorded use the
    # last step logged in the first epoch
    steps = history[0].get("steps") if history else None
    if not steps:
        logged = [r["step"] for r in records if r.get("type") == "step" and r["epoch"] == 1]
        steps = max(logged, default=1)
    return plot_curves(history, records, run / "curves.png", steps)


def _tiles(images, h: int, w: int) -> np.ndarray:
    """``images`` as one uint8 ``(N, h, w, 3)`` array: equal-sized grey or RGB arrays as
    they are, any others (a user's photos, of any size) fitted in, aspect kept, on white."""
    from PIL import Image

    tiles = np.full((len(images), h, w, 3), 255, np.uint8)
    for i, image in enumerate(images):
        a = np.asarray(image)
        if a.shape[:2] != (h, w) or (a.ndim == 3 and a.shape[2] != 3):
            pil = Image.fromarray(a)
            if pil.mode in ("RGBA", "LA", "P"):  # transparent: as it looks on white paper
                pil = Image.alpha_composite(
                    Image.new("RGBA", pil.size, "white"), pil.convert("RGBA")
                )
            scale = min(h / pil.height, w / pil.width)
            size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
            pil = pil.convert("RGB").resize(size, Image.NEAREST if scale >= 1 else Image.BOX)
            a, top, left = np.asarray(pil), (h - size[1]) // 2, (w - size[0]) // 2
            tiles[i, top : top + size[1], left : left + size[0]] = a
        else:
            tiles[i] = a[..., None] if a.ndim == 2 else a  # grey broadcasts to RGB
    return tiles


def plot_grid(
    images,
    titles: list[str],
    path: str | os.PathLike,
    title: str = "",
    colors: list[str] | None = None,
    cols: int = 8,
) -> Path:
    """A grid of images (uint8 ``(N, 28, 28)``, or a list of any sizes), each with its own
    (coloured) title.

    The images are tiled into one mosaic on one axes, the titles written above their
    tiles: a subplot per image (64 of them for the mistakes) took about 1 s to lay out
    and draw, and every evaluation draws two grids.
    """
    plt = _plt()
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    shapes = {np.shape(image)[:2] for image in images}
    h, w = shapes.pop() if len(shapes) == 1 else (56, 56)  # mixed sizes: each fitted in
    gap_x, gap_y = max(1, w // 4), max(1, h // 2)  # white between tiles; room for a title
    cell_w, cell_h = w + gap_x, h + gap_y
    mosaic = np.full((rows * cell_h, cols * cell_w, 3), 255, np.uint8)
    for i, tile in enumerate(_tiles(images, h, w)):  # (h, w, 3) each
        r, c = divmod(i, cols)
        top, left = r * cell_h + gap_y, c * cell_w + gap_x // 2
        mosaic[top : top + h, left : left + w] = tile
    head = 0.5 if title else 0.0
    fig = plt.figure(figsize=(1.5 * cols, 1.7 * rows + head))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 - head / (1.7 * rows + head)))
    ax.axis("off")
    if n:
        ax.imshow(mosaic, interpolation="nearest")
        for i, text in enumerate(titles[:n]):
            r, c = divmod(i, cols)
            x, y = c * cell_w + cell_w / 2 - 0.5, r * cell_h + gap_y - 1.5
            color = colors[i] if colors else "black"
            ax.text(x, y, text, ha="center", va="bottom", fontsize=8, color=color)
    else:
        fig.text(0.5, 0.5, "nothing to show", ha="center", va="center")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_samples(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    path: str | os.PathLike,
    title: str = "",
    cols: int = 8,
) -> Path:
    """A grid of uint8 ``(N, 28, 28)`` images with their class names as titles."""
    titles = [str(class_names[int(y)]) for y in labels]
    return plot_grid(images, titles, path, title, cols=cols)
