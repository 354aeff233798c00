"""Bold digits that fill their frame, made from MNIST digits: what a scan normalised to
its box or a digit cropped to its ink looks like (``tests/serve/test_frame_filling_digits.py``,
``benchmarks/frame_filling.py``).

``cropped(bold(a, 2))`` makes a 28x28 digit 2 px bolder (at 28 px scale) and cuts it to
its ink; ``render(c, 64, dark=True, fill=True)`` gives it as an image 64 px square, dark
ink on white, strokes on the border. As with ``number_rows``, callers pass MNIST's
**test** digits, never the training split.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["bold", "cropped", "render"]


def _disk(r: int) -> np.ndarray:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return xx**2 + yy**2 <= r * r


def bold(a: np.ndarray, px: int, square: bool = False) -> np.ndarray:
    """The digit 4x enlarged (144x144, uint8, white on black), ``px`` (28 px scale) bolder
    all round: a grey dilation by a disk on the enlarged digit (the anti-aliased edge
    stays 1 px), or by a (2 px + 1)-square at 28 px (a blocky marker, its faint edge
    widened too)."""
    a = np.pad(a, 4)
    if square:
        a = ndimage.grey_dilation(a, size=(2 * px + 1, 2 * px + 1))
    big = np.asarray(Image.fromarray(a).resize((144, 144), Image.BICUBIC))
    return ndimage.grey_dilation(big, footprint=_disk(4 * px)) if px and not square else big


def cropped(big: np.ndarray) -> np.ndarray:
    """Cut to its ink's box, no margin."""
    ys, xs = np.nonzero(big > 25)
    return big[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def render(
    c: np.ndarray,
    side: int,
    dark: bool,
    fill: bool = False,
    margin: bool = False,
    noise: float = 0,
    jpeg: int | None = None,
    rng: np.random.Generator | None = None,
    binary: bool = False,
) -> Image.Image:
    """``c`` (white ink on black) fitted into ``side`` px, or stretched to fill a square of
    it as the Semeion and USPS sets are; binary (two levels) or grey; with a quarter of
    its longer side of paper all round (the same pixels of digit); dark ink on white or
    as it is; with Gaussian noise (sd in levels, drawn from ``rng``) and JPEG at ``jpeg``
    quality."""
    s = side / max(c.shape)
    size = (side, side) if fill else (max(1, round(c.shape[1] * s)), max(1, round(c.shape[0] * s)))
    im = np.asarray(Image.fromarray(c).resize(size, Image.BOX), np.float32)
    if binary:
        im = np.where(im > 127, 255.0, 0.0)
    if margin:
        im = np.pad(im, max(im.shape) // 4)
    im = 255 - im if dark else im
    if noise:
        im = im + rng.normal(0, noise, im.shape)
    img = Image.fromarray(np.clip(im, 0, 255).astype(np.uint8))
    if jpeg:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=jpeg)
        img = Image.open(io.BytesIO(buf.getvalue()))
    return img
