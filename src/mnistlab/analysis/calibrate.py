"""Calibrating a checkpoint: fit its temperature on held-out images and store it.

``mnistlab train`` calibrates the run's best checkpoint when it finishes,
``mnistlab ensemble`` calibrates the ensemble it writes, and ``mnistlab calibrate
RUN`` (re)does it for any run. The temperature is fitted on images the model never
trained on, the run's validation split (for an ensemble: the validation split its
members share). A run with none (such as ``--preset best``, which trains on all
60,000) is fitted on training images instead and says so; such a model is right
more often there than on new images, so the fitted temperature leans over-confident.
The test split is never used to fit: its ECE before and after is only reported.

A digit model also gets its reject threshold here (``models/_reject.py``): fitted on
the same validation digits, at the fitted temperature, and on the validation
outliers (``data/outliers.py``, fonts and seeds that training never used). How
much of the test split it rejects is reported, never used.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write_json
from ..data import load_split
from ..data.loader import load_data
from ..data.outliers import DRY_RUN_OUTLIERS, outlier_images
from ..models import fit_temperature, set_temperature
from ..models._reject import digit_scores, fit_threshold
from ..runs.checkpoint import load_checkpoint
from ..runs.folder import json_safe
from ..serve.export import export_beside
from .evaluate import predict_logits
from .metrics import calibration

__all__ = ["calibrate_checkpoint", "calibration_images"]

FALLBACK_IMAGES = 10_000  # training images to fit on when no validation split exists


def calibration_images(
    configs: list[dict], data_dir=None, device="cpu"
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Images to fit a temperature on, labels, and what they are: the validation split
    that the runs of ``configs`` (their train configs) all held out, if there is one;
    else ``FALLBACK_IMAGES`` training images drawn with seed 0."""
    c = configs[0]
    split = {
        (d.get("dataset"), d.get("val_size"), d.get("seed"), d.get("train_subset")) for d in configs
    }
    dataset = c.get("dataset", "mnist")
    if len(split) == 1 and c.get("val_size"):
        data = load_data(dataset, data_dir, device, c["val_size"], c["seed"], c.get("train_subset"))
        x, y = data.val
        return x, y, f"the validation split ({len(y):,} images)"
    x, y = load_split(dataset, "train", data_dir, device)
    pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:FALLBACK_IMAGES]
    why = (
        "the run holds out no validation split"
        if len(configs) == 1
        else "the members hold out no common validation split"
    )
    return x[pick.to(x.device)], y[pick.to(y.device)], f"{len(pick):,} training images ({why})"


def _ece(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return calibration(torch.softmax(logits.double(), 1), labels.cpu())["ece"]


DIGITS = tuple("0123456789")


def _scores(logits: torch.Tensor) -> np.ndarray:
    return digit_scores(torch.softmax(logits.double(), 1).cpu().numpy())


def _reject_record(
    model, val_logits, val_y, test_logits, t: float, device, count: int | None = None
) -> dict:
    """The reject threshold fitted on validation digits (``val_logits``, calibrated)
    and validation outliers (the first ``count`` of them for dry runs, else all), and
    what it does there and on the test split."""
    outliers = torch.from_numpy(outlier_images("val", count))[:, None].to(device)
    out_logits = predict_logits(model, outliers, model.meta.mean, model.meta.std).double() / t
    digits, others = _scores(val_logits), _scores(out_logits)
    threshold = fit_threshold(digits, others)
    test = _scores(test_logits)
    return {
        "reject_threshold": threshold,
        "val_digits_rejected": float((digits < threshold).mean()),
        "val_outliers_rejected": float((others < threshold).mean()),
        "val_outliers": len(others),
        "test_rejected": float((test < threshold).mean()),  # reported, never fitted on
    }


def calibrate_checkpoint(
    checkpoint: str | os.PathLike, data_dir=None, device: str | torch.device = "cpu"
) -> dict:
    """Fit the temperature of ``checkpoint`` (a ``.json``), write it into the checkpoint's
    JSON (the weights do not change) and return the record stored with it."""
    model, doc = load_checkpoint(checkpoint, device)
    set_temperature(model, 1.0)  # fit from the raw logits, whatever was stored before
    members = doc.get("ensemble", {}).get("members")
    configs = [m["config"] for m in members] if members else [doc.get("config", {})]
    x, y, fitted_on = calibration_images(configs, data_dir, device)
    meta = model.meta
    logits = predict_logits(model, x, meta.mean, meta.std).double()  # (N, C), at T = 1
    t = fit_temperature(logits, y)
    test_x, test_y = load_split(doc.get("dataset", "mnist"), "test", data_dir, device)
    test_logits = predict_logits(model, test_x, meta.mean, meta.std).double()
    record = {
        "temperature": t,
        "fitted_on": fitted_on,
        "ece_before": _ece(logits, y),
        "ece_after": _ece(logits / t, y),
        "test_ece_before": _ece(test_logits, test_y),  # reported, never fitted on
        "test_ece_after": _ece(test_logits / t, test_y),
    }
    if tuple(meta.class_names) == DIGITS:
        dry = all(c.get("dry_run") for c in configs)
        count = DRY_RUN_OUTLIERS if dry else None
        record.update(_reject_record(model, logits / t, y, test_logits / t, t, device, count))
        doc["model"]["reject_threshold"] = record["reject_threshold"]
    doc["model"]["temperature"] = t
    doc["calibration"] = record
    # the model as it now answers, for ONNX Runtime: `predict` and `serve` use it without
    # torch (without the onnx package, which [train] brings, they use torch instead)
    for key in ("onnx", "onnx_sha256"):  # an older file no longer fits the model
        doc.pop(key, None)
    if importlib.util.find_spec("onnx") is not None:
        set_temperature(model, t)
        model.meta.reject_threshold = doc["model"].get("reject_threshold")
        record["onnx"] = export_beside(model, Path(checkpoint).with_suffix(".json"), doc).name
    atomic_write_json(Path(checkpoint).with_suffix(".json"), json_safe(doc))
    return record
