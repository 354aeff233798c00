"""Digits as image files, the way a user hands them over: dark ink on white paper."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def png(pixels: np.ndarray, scale: int = 4) -> bytes:
    """An MNIST digit as dark ink on white paper, enlarged, as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(255 - pixels).resize((28 * scale, 28 * scale), Image.BICUBIC).save(buf, "PNG")
    return buf.getvalue()


def row_png(digits: list[np.ndarray]) -> bytes:
    """Digits side by side with a gap, dark on white: a number to read."""
    gap = np.zeros((28, 10), np.uint8)
    row = np.hstack([gap] + [x for d in digits for x in (d, gap)])
    buf = io.BytesIO()
    Image.fromarray(255 - np.pad(row, 10)).resize((row.shape[1] * 3 + 60, 144)).save(buf, "PNG")
    return buf.getvalue()


def stroke_png(path: Path, seed: int = 0) -> Path:
    """A black-on-white stroke, enough ink for the preprocessing to find."""
    a = np.full((140, 140), 255, np.uint8)
    a[20:120, 60 + seed % 20 : 75 + seed % 20] = 0
    a[20:35, 30:110] = 0
    Image.fromarray(a).save(path)
    return path


def thin_png(path: Path, w: int, h: int) -> Path:
    """A ``w`` x ``h`` image (one side a few pixels) with ink across its thin side."""
    a = np.full((h, w), 255, np.uint8)
    a[:, w // 3 : w // 2] = 0  # ink across the whole thin side
    Image.fromarray(a).save(path)
    return path
