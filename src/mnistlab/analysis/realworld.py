"""The real-world evaluation: a model on digits that are not MNIST, read the way
users' images are (``serve.preprocess.to_mnist``, then ``Predictor.probs``).

The images come from ``mnistlab.data.realworld`` (UCI scans and synthetic
people's drawings made from MNIST digits); its docstring gives the rule: choose
between variants on ``split="dev"`` (MNIST validation digits), report on
``split="test"`` (MNIST test digits), never train on either. An image that
``to_mnist`` refuses counts as wrong, and each row says how many there were.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .._io import atomic_write_json
from ..data.realworld import SETS, ImageSet, realworld_sets
from ..serve.preprocess import PreprocessError, to_mnist

__all__ = ["evaluate_realworld", "preprocess_set", "write_realworld", "write_realworld_examples"]

BATCH = 500


def preprocess_set(image_set: ImageSet) -> tuple[np.ndarray, np.ndarray]:
    """Each image through ``to_mnist``: uint8 digits ``(N, 28, 28)`` (blank where it
    was refused) and a boolean ``(N,)``: which ones it accepted."""
    digits = np.zeros((len(image_set.images), 28, 28), dtype=np.uint8)
    ok = np.zeros(len(image_set.images), dtype=bool)
    for i, img in enumerate(image_set.images):
        try:
            digits[i] = to_mnist(img, f"{image_set.name}[{i}]")
            ok[i] = True
        except PreprocessError:
            pass
    return digits, ok


def _predict(predictor, digits: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The predicted class per digit, -1 where preprocessing refused the image."""
    preds = np.full(len(digits), -1, dtype=np.int64)
    idx = np.flatnonzero(ok)
    for start in range(0, len(idx), BATCH):
        part = idx[start : start + BATCH]
        preds[part] = predictor.probs(digits[part]).argmax(1)
    return preds


def _row(name: str, n: int, correct: int, rejected: int) -> dict:
    return {
        "set": name,
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        "rejected": rejected,
    }


def evaluate_realworld(
    predictor,
    split: str = "test",
    n: int = 500,
    seed: int = 0,
    data_dir=None,
    sets: list[str] | None = None,
    uci: bool | None = None,
) -> list[dict]:
    """Rows ``{"set", "n", "correct", "accuracy", "rejected"}``: one per synthetic set,
    ``"all"`` (the synthetic sets together), then ``"uci"`` where scikit-learn is
    installed (or as ``uci`` says). ``predictor`` is ``serve.predict.load_predictor(run)``."""
    rows, uci_rows = [], []
    for image_set in realworld_sets(split, n, seed, data_dir, sets, uci):
        digits, ok = preprocess_set(image_set)
        correct = int((_predict(predictor, digits, ok) == image_set.labels).sum())
        row = _row(image_set.name, len(digits), correct, int((~ok).sum()))
        (uci_rows if image_set.name == "uci" else rows).append(row)
    if rows:
        rows.append(_row("all", *(sum(r[k] for r in rows) for k in ("n", "correct", "rejected"))))
    return rows + uci_rows


def write_realworld(
    predictor,
    out_dir: str | os.PathLike,
    split: str = "test",
    n: int = 500,
    seed: int = 0,
    data_dir=None,
    source: str | os.PathLike | None = None,
) -> tuple[list[dict], Path]:
    """``evaluate_realworld`` written to ``out_dir/realworld.json`` (``source``: the
    checkpoint the predictor was loaded from, recorded beside the rows)."""
    start = time.perf_counter()
    rows = evaluate_realworld(predictor, split, n, seed, data_dir)
    doc = {
        "model": predictor.name,
        "checkpoint": None if source is None else str(source),
        "suite": "realworld",
        "split": split,
        "seed": seed,
        "per_set": n,
        "sets": {name: about for name, (about, _) in SETS.items()},
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    return rows, atomic_write_json(Path(out_dir) / "realworld.json", doc)


def write_realworld_examples(
    path: str | os.PathLike,
    split: str = "dev",
    per_set: int = 8,
    seed: int = 0,
    data_dir=None,
    predictor=None,
) -> Path:
    """A PNG for a person to check the sets: per set, a row of images as a user would
    have them, and below it what ``to_mnist`` made of each (with the prediction and
    green/red when ``predictor`` is given)."""
    from .plots import plot_grid

    images, titles, colors = [], [], []
    for image_set in realworld_sets(split, per_set, seed, data_dir):
        shown = ImageSet(image_set.name, image_set.images[:per_set], image_set.labels[:per_set])
        digits, ok = preprocess_set(shown)
        preds = _predict(predictor, digits, ok) if predictor is not None else None
        for i, img in enumerate(shown.images):
            images.append(np.asarray(img))
            titles.append(f"{shown.name}: {shown.labels[i]}" if i == 0 else str(shown.labels[i]))
            colors.append("black")
        for i, digit in enumerate(digits):
            images.append(digit)
            if not ok[i]:
                titles.append("refused")
                colors.append("red")
            elif preds is None:
                titles.append("to_mnist")
                colors.append("black")
            else:
                titles.append(f"-> {preds[i]}")
                colors.append("green" if preds[i] == shown.labels[i] else "red")
    title = f"real-world sets ({split}): each row as a user has it, below it after to_mnist"
    return plot_grid(images, titles, path, title, colors, cols=per_set)
