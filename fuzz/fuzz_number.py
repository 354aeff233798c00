"""Fuzz ``read_number`` (``predict --number``, ``POST /api/read``) with wide and speckled images.

    python fuzz/fuzz_number.py -max_total_time=60    # libFuzzer flags; see docs/reliability.md

Issue 28: a 2 kB PNG of thin bars cost seconds, the segmentation's work growing with
the square of the width. Here the bytes are not an image file (``fuzz_image`` covers
the decoders) but a recipe for the images that make the segmentation work: a width
up to the server's 4,096 px and a height up to 200 from the first bytes, then columns
of ink (a bar from each byte's low and high halves, the pattern tiled across the
width), or specks (byte pairs as positions, tiled), or both. The classifier is a real
one, an untrained ``linear`` model through ONNX Runtime as the server runs it. Only
the project's one-line errors may escape; ``fuzz/run.py`` reports the slowest input.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import scipy.ndimage  # noqa: F401  # imported before instrumenting: no input reaches its Python
from _harness import expect_own_error, instrumented, main

with instrumented(__name__, "mnistlab"):
    from PIL import Image

    from mnistlab.errors import MnistlabError
    from mnistlab.serve.numbers import read_number

MAX_WIDTH = 4096  # the web app's MAX_SIDE
MAX_HEIGHT = 200
_predictor = None


def predictor():
    """An untrained linear model through ONNX Runtime, made on first use (seconds)."""
    global _predictor
    if _predictor is None:
        import torch

        from mnistlab import create_model, save_checkpoint
        from mnistlab.serve.predict import load_predictor

        torch.manual_seed(0)
        with tempfile.TemporaryDirectory(prefix="fuzz-number-") as folder:
            path = save_checkpoint(Path(folder) / "best", create_model("linear"))
            _predictor = load_predictor(path, backend="auto")
    return _predictor


def image(data: bytes) -> Image.Image | None:
    """The image ``data`` describes: [width: 2 bytes][height][kind][pattern...]."""
    if len(data) < 5:
        return None
    w = 1 + int.from_bytes(data[:2], "big") % MAX_WIDTH
    h = 1 + data[2] % MAX_HEIGHT
    kind, pattern = data[3], np.frombuffer(data[4:], np.uint8)
    ink = np.zeros((h, w), bool)
    if kind & 1:  # columns: byte b draws a bar from (b & 15)/16 of the height, (b >> 4)/16 long
        col = np.resize(pattern, w).astype(np.intp)
        top, length = (col & 15) * h // 16, (col >> 4) * h // 16 + 1
        rows = np.arange(h)[:, None]
        ink |= (rows >= top) & (rows < top + length) & (np.arange(w) % (1 + kind // 64) == 0)
    if kind & 2:  # specks: byte pairs as (x, y), tiled along the width every 256 px
        pairs = np.resize(pattern, max(2, len(pattern) // 2 * 2)).reshape(-1, 2).astype(np.intp)
        for x0 in range(0, w, 256):
            xs, ys = pairs[:, 0] + x0, pairs[:, 1] * h // 256
            ok = xs < w
            ink[ys[ok], xs[ok]] = True
    levels = np.where(ink, 0, 255) if kind & 4 else np.where(ink, 255, 0)  # dark ink on white
    return Image.fromarray(levels.astype(np.uint8))


def check(data: bytes) -> None:
    """Read the number in the image ``data`` describes; only the project's one-line
    errors, each with a ``kind`` (the web app's status code), may escape."""
    img = image(data)
    if img is None:
        return
    try:
        result = read_number(predictor(), img, "image")
    except MnistlabError as e:
        expect_own_error(e, need_kind=True)
        return
    if result.problem:  # a row it cannot read (two rows, sideways): said, nothing read
        assert not (result.number or result.text or result.digits), result
        return
    assert 0 < len(result.digits) <= 32 and len(result.number) == len(result.digits)


def _recipe(width: int, height: int, kind: int, pattern: bytes) -> bytes:
    return (width - 1).to_bytes(2, "big") + bytes([height - 1, kind]) + pattern


def seeds() -> list[bytes]:
    """Combs (the issue's thin bars, tall and flat ones), speck fields, long thin rows,
    a few wide groups: at widths from 64 to 4,096."""
    out = []
    for w in (64, 512, 4096):
        out.append(_recipe(w, 160, 1 | 4 | 64, bytes([0xF0])))  # bars every other column
        out.append(_recipe(w, 160, 1 | 4 | 128, bytes([0xF0, 0x17])))  # tall and flat
        out.append(_recipe(w, 40, 2 | 4, bytes(range(0, 256, 7))))  # specks
        out.append(_recipe(w, 1, 1, bytes([0x00])))  # a 1-px row
        out.append(_recipe(w, 120, 1 | 2, bytes([0x84, 0x84, 0x00, 0x00, 0x00, 0x00])))
    return out


if __name__ == "__main__":
    predictor()  # loaded now, not counted as the first input's time
    main("number", check, seeds)
