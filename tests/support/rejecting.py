"""Helpers for the reject option's tests: a run copy with a reject threshold, a
threshold between two scores, and a scribble that is no digit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def with_threshold(run: Path, folder: Path, threshold: float | None) -> Path:
    """A copy of ``run`` whose best.json says ``model.reject_threshold: threshold``."""
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("eval", "inspect", "report.html"))
    doc = json.loads((folder / "best.json").read_text())
    doc["model"]["reject_threshold"] = threshold
    (folder / "best.json").write_text(json.dumps(doc, indent=2))
    return folder


def between(low: float, high: float) -> float:
    """A threshold halfway between two digit scores, which must be far enough apart that
    float32 and float64 paths (torch, ONNX Runtime) cannot put a score on either side."""
    assert high - low > 1e-4, (low, high)
    return float(low + high) / 2


def scribble() -> Image.Image:
    """A 140x140 black-on-white zigzag of 12 random points (seed 0): ink, but no digit."""
    img = Image.new("L", (140, 140), 255)
    points = [tuple(p) for p in np.random.default_rng(0).integers(15, 125, (12, 2)).tolist()]
    ImageDraw.Draw(img).line(points, fill=0, width=8)
    return img
