"""A trained model's full evaluation on a split: metrics, calibration and the pictures.

Three things are called "evaluate", one per level:

- ``mnistlab.evaluate`` (``train/loop.py``): loss, accuracy and the confusion
  matrix of a model on one split, as training logs them after every epoch;
- ``write_evaluation`` (here): everything ``mnistlab evaluate`` shows and the run
  report embeds: per-class scores, calibration, the most confident mistakes,
  written as ``confusion.png``, ``mistakes.png``, ``predictions.png``,
  ``reliability.png`` and ``eval.json`` into an output folder, with how much of the
  split the model's reject threshold answers "not a digit" (``reject_summary``);
- ``mnistlab evaluate RUN`` (``cli/analysis.py``): the command around it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .._io import atomic_write_json
from ..data.normalize import normalize
from ..models._reject import digit_scores, is_digit
from .metrics import calibration, confident_mistakes, confusion_matrix, per_class

__all__ = ["NO_THRESHOLD", "predict_logits", "predict_probs", "reject_summary", "write_evaluation"]

NO_THRESHOLD = "no reject threshold (calibrate the run)"


@torch.inference_mode()
def predict_logits(
    model: nn.Module, images: torch.Tensor, mean: float, std: float, batch_size: int = 1000
) -> torch.Tensor:
    """Logits ``(N, C)`` (float32, on the CPU) for uint8 ``images``."""
    model.eval()
    out = [
        model(normalize(images[i : i + batch_size], mean, std)).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


def predict_probs(
    model: nn.Module, images: torch.Tensor, mean: float, std: float, batch_size: int = 1000
) -> torch.Tensor:
    """Softmax probabilities ``(N, C)`` (float32, on the CPU) for uint8 ``images``."""
    return F.softmax(predict_logits(model, images, mean, std, batch_size), 1)


@torch.inference_mode()
def _logits_before_and_after(model: nn.Module, images, batch_size: int):
    """(the logits after the model's temperature, as users get them; the logits as they
    were before it divided them), both ``(N, C)`` float32 on the CPU, in one pass."""
    from ..models import TestTimeAugmentation

    meta = model.meta
    t = meta.temperature
    if not isinstance(model, TestTimeAugmentation):  # the forward hook divides by t
        logits = predict_logits(model, images, meta.mean, meta.std, batch_size)
        return logits, logits * t
    # with TTA the temperature divides each view's logits before they are averaged:
    # keep the views' logits, and average them both ways
    model.eval()
    views = torch.cat(
        [
            model.view_logits(normalize(images[i : i + batch_size], meta.mean, meta.std)).cpu()
            for i in range(0, len(images), batch_size)
        ],
        dim=1,
    )  # (V, N, C)
    return model.average(views), model.average(views * t)


def reject_summary(probs: torch.Tensor, labels: torch.Tensor, threshold: float | None) -> dict:
    """How the reject option does on labelled digits, for probabilities ``(N, C)`` and
    labels ``(N,)``: every image here is a digit, so each rejection is a loss.

    ``accuracy_rejected_wrong``: right answers over all N (a rejected digit counts as
    wrong); ``accuracy_kept``: right answers over the digits kept (None if none is)."""
    scores = digit_scores(probs.double().numpy())  # (N,)
    kept = torch.from_numpy(is_digit(scores, threshold))  # (N,) bool
    right = probs.argmax(1) == labels  # (N,) bool
    n, n_kept = len(labels), int(kept.sum())
    n_right_kept = int((right & kept).sum())
    return {
        "threshold": threshold,
        "rejected": n - n_kept,
        "rejected_rate": (n - n_kept) / max(n, 1),
        "kept": n_kept,
        "accuracy_rejected_wrong": n_right_kept / max(n, 1),
        "accuracy_kept": n_right_kept / n_kept if n_kept else None,
        "note": NO_THRESHOLD if threshold is None else "",
    }


def write_evaluation(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    out_dir: str | os.PathLike,
    batch_size: int = 1000,
    split: str = "test",
) -> dict:
    """Evaluate ``model`` (with its ``meta``) and write the pictures and ``eval.json``."""
    from .plots.common import plot_grid
    from .plots.eval import plot_confusion, plot_reliability

    meta = model.meta
    names = list(meta.class_names)
    out = Path(out_dir)
    logits, uncalibrated = _logits_before_and_after(model, images, batch_size)
    probs = F.softmax(logits, 1)  # what users see: after the model's temperature, if any
    labels_cpu = labels.cpu()
    preds = probs.argmax(1)
    n = len(labels_cpu)
    cm = confusion_matrix(labels_cpu, preds, len(names))
    nll = F.nll_loss(torch.log(probs.clamp_min(1e-12)), labels_cpu).item()
    cal = calibration(probs, labels_cpu)
    pixels = images[:, 0].cpu().numpy()  # (N, 28, 28) uint8

    wrong = confident_mistakes(probs, labels_cpu, k=24)
    mistake_titles = [
        f"true {names[labels_cpu[i]]}\npred {names[preds[i]]} {100 * probs[i].max():.0f}%"
        for i in wrong.tolist()
    ]
    files = {
        "confusion": plot_confusion(
            cm.numpy(),
            names,
            out / "confusion.png",
            f"{meta.name} on {split}: {cm.diag().sum().item():,} of {n:,} right",
        ),
        "mistakes": plot_grid(
            pixels[wrong.numpy()],
            mistake_titles,
            out / "mistakes.png",
            "The most confident mistakes",
            colors=["crimson"] * len(wrong),
        ),
        "reliability": plot_reliability(cal, out / "reliability.png"),
    }
    first = list(range(min(32, n)))
    files["predictions"] = plot_grid(
        pixels[first],
        [f"{names[preds[i]]} ({100 * probs[i].max():.0f}%)" for i in first],
        out / "predictions.png",
        f"Predictions on the first {len(first)} {split} images (red: wrong)",
        colors=["black" if preds[i] == labels_cpu[i] else "crimson" for i in first],
    )
    result = {
        "model": meta.name,
        "split": split,
        "n": n,
        "accuracy": cm.diag().sum().item() / max(n, 1),
        "loss": nll,
        "ece": cal["ece"],
        "temperature": meta.temperature,
        # before calibration: the logits as they were before the temperature divided them
        "ece_uncalibrated": calibration(F.softmax(uncalibrated, 1), labels_cpu)["ece"],
        "reject": reject_summary(probs, labels_cpu, meta.reject_threshold),
        "per_class": {names[i]: row for i, row in enumerate(per_class(cm))},
        "confusion": cm.tolist(),
        "calibration_bins": cal["bins"],
        "mistakes": [
            {
                "index": i,
                "true": names[labels_cpu[i]],
                "predicted": names[preds[i]],
                "confidence": probs[i].max().item(),
            }
            for i in wrong.tolist()
        ],
        "files": {k: Path(v).name for k, v in files.items()},
    }
    atomic_write_json(out / "eval.json", result)
    return result
