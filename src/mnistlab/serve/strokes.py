"""Stroke width: one way to measure it, and bringing a digit's strokes into MNIST's range.

**The definition** (``stroke_width``). Take the ink mask at half of full ink (the
edge of an anti-aliased stroke), with the digit enlarged 4x (bilinear) so the mask
has sub-pixel detail. Its distance transform (EDT) peaks along the stroke's centre
line, the *ridge* (pixels whose EDT no 8-neighbour exceeds). There a stroke of
``w`` pixels has EDT ``(w + 1) / 2`` for odd ``w`` and ``w / 2`` for even ``w``
(the EDT counts to the nearest blank pixel's centre), so ``2 * EDT - 0.5`` is the
width, exact to half a pixel. The width is its mean over the ridge, divided by 4:
in pixels of the 28x28. The mean, not the median: the ridge values are few
distinct numbers, and a mean does not jump between them.

**The correction** (``fit_strokes``). A user's digit is measured the same way
(``width28``) on its crop before it is reduced to 20x20, at the scale where its ink
box is ``MEASURE_SIDE`` (2x MNIST's box, half the time of 4x: on MNIST digits it reads
0.07 px low and scatters by 0.14 px against ``stroke_width``). Only a width far outside
MNIST's range (below ``THIN`` or above ``THICK``) is changed: the ink is dilated or
eroded there, at ``CORRECT_SIDE``, with a disk whose radius brings the width, once
reduced, to MNIST's median (eroding: to ``ERODE_TO``). Digits inside the range (scans,
most drawings) are left exactly as they are; a cheap rough width rules most of them in
without the EDT.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = [
    "MNIST_MEDIAN",
    "MNIST_P10",
    "MNIST_P90",
    "THICK",
    "THIN",
    "fit_strokes",
    "full_ink",
    "measure_mnist",
    "stroke_width",
    "width28",
]

# stroke_width over the 60,000 MNIST training digits, measured by
#   MNISTLAB_DATA=../shared/data/mnist python -c \
#     "from mnistlab.serve.strokes import measure_mnist; print(measure_mnist())"
# (p1 1.25, p5 1.57, p10 1.74, median 2.42, p90 3.45, p95 3.82, p99 4.69)
MNIST_P10 = 1.74
MNIST_MEDIAN = 2.42
MNIST_P90 = 3.45
# Corrected only far outside that range, as the dev split decided (``mnistlab evaluate
# RUN --suite realworld --split dev``, a default-trained model). A 1-3 px pen on a big
# canvas measures 0.75 (as low as this measure goes) and reads at 14% as it is, 99%
# thickened; any THIN from 1.0 to 1.74 scores the same, so it is 1.0, under MNIST's 1st
# percentile, and MNIST's own thin digits are left alone. Thickened to MNIST's median.
# A marker's strokes (3.8-5.6 px) read at 95.4% as they are, 97-98% eroded with any
# bound from 3.8 to 4.7 and any goal from 2.7 to 3.45; the blurred UCI scans (2.7-5.7)
# lose digits if eroded to the median (8s whose loops the pen filled), none to 3.0. So
# beyond THICK, between MNIST's 95th and 99th percentiles, strokes are eroded to
# ERODE_TO, in the upper half of MNIST's range: no further than needed, as erosion
# takes detail with it; and only stroke-like ink, MIN_LENGTH widths long or more.
THIN = 1.0
THICK = 4.2
ERODE_TO = 3.0
MIN_LENGTH = 4.0  # ink under 4 widths long is a blob (a marker's 8, a fat 1): not eroded
ROUGH_INSIDE = (1.4, 3.4)  # a rough width here means the EDT's is inside [THIN, THICK]
UPSAMPLE = 4  # stroke_width enlarges the 28x28 this much
MEASURE_SIDE = 40  # a user's ink box is measured at 2x MNIST's 20 px box (4x: twice the time)
CORRECT_SIDE = 80  # ... and corrected at 4x, for smooth edges once reduced
EIGHT = np.ones((3, 3), dtype=bool)


def _ridge_width(mask: np.ndarray, stat=np.mean) -> float:
    """``stat`` (the mean) of ``2 * EDT - 0.5`` over the ridge of ``mask``, in its pixels
    (0 if empty)."""
    if not mask.any():
        return 0.0
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=bool)
    padded[1:-1, 1:-1] = mask  # blank all round: the EDT sees only the blank it is given
    edt = ndimage.distance_transform_edt(padded)
    ridge = padded & (edt >= ndimage.maximum_filter(edt, size=3))
    return float(2 * stat(edt[ridge]) - 0.5)


def _resized(ink: np.ndarray, side: int) -> np.ndarray:
    """``ink`` with its longer side ``side`` (area-averaged down, bilinear up)."""
    if max(ink.shape) == 2 * side and not (ink.shape[0] % 2 or ink.shape[1] % 2):
        return (ink[0::2, 0::2] + ink[1::2, 0::2] + ink[0::2, 1::2] + ink[1::2, 1::2]) / 4
    k = side / max(ink.shape)
    size = (max(1, round(ink.shape[1] * k)), max(1, round(ink.shape[0] * k)))
    f = Image.BOX if k < 1 else Image.BILINEAR
    return np.asarray(Image.fromarray(ink, "F").resize(size, f))


def stroke_width(digit28: np.ndarray) -> float:
    """The stroke width of a (28, 28) digit (uint8 0..255, or float 0..1), in its pixels."""
    d = np.asarray(digit28, dtype=np.float32)
    if d.max() > 1:
        d = d / 255
    size = (d.shape[1] * UPSAMPLE, d.shape[0] * UPSAMPLE)
    big = np.asarray(Image.fromarray(d, "F").resize(size, Image.BILINEAR))
    return _ridge_width(big >= 0.5) / UPSAMPLE


def measure_mnist(data_dir=None, split: str = "train") -> dict[str, float]:
    """Percentiles of ``stroke_width`` over an MNIST split (a minute for the 60,000)."""
    from ..data.loader import load_split

    x, _ = load_split("mnist", split, data_dir)
    w = np.array([stroke_width(d) for d in x[:, 0].numpy()])
    q = [1, 5, 10, 50, 90, 95, 99]
    return {f"p{p}": round(float(v), 2) for p, v in zip(q, np.percentile(w, q), strict=True)}


def _measure(ink: np.ndarray, quick: bool = False) -> tuple[float, float]:
    """(width at 28x28, how many widths long the strokes are) of a crop of ink. With
    ``quick``, first a rough width from area and outline, ``2 * area / edge pixels``
    (within 0.8x-1.35x of the EDT's on the dev split's digits), returned with length 0
    where it is inside ``ROUGH_INSIDE``: then the EDT could not find it out of range."""
    small = ink if max(ink.shape) == MEASURE_SIDE else _resized(ink, MEASURE_SIDE)
    # half of the strongest ink, not of full ink: a hairline averaged down to grey is
    # still a line here (on full-contrast ink the two are the same)
    mask = small >= 0.5 * float(small.max())
    scale = 20 / max(small.shape)
    if quick:
        p = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=bool)
        p[1:-1, 1:-1] = mask
        inner = mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        area = int(mask.sum())
        rough = 2 * area / max(area - int(inner.sum()), 1) * scale
        if ROUGH_INSIDE[0] <= rough <= ROUGH_INSIDE[1]:
            return rough, 0.0
    w = _ridge_width(mask)
    return w * scale, float(mask.sum()) / max(w, 1e-6) ** 2


def width28(ink: np.ndarray) -> float:
    """The stroke width ``ink`` (float [0, 1], cropped to its box) would have once fitted
    into MNIST's 20x20 box: ``stroke_width``'s measure, taken at ``MEASURE_SIDE``."""
    return _measure(ink)[0]


def full_ink(ink: np.ndarray) -> np.ndarray:
    """``ink`` scaled so its strongest strokes (the 90th percentile of the inked pixels)
    are full ink: a faint pen, or a line thinned to grey by a reduction, becomes black.
    Paper must be 0 already (so no noise is amplified)."""
    inked = ink[ink > 0]
    if not inked.size:
        return ink
    i = int(0.9 * (inked.size - 1))
    strong = float(np.partition(inked, i)[i])
    return np.minimum(ink / strong, 1) if 0 < strong < 1 else ink


def _disk(radius: float) -> np.ndarray:
    r = int(np.floor(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy**2 + xx**2 <= radius**2 + 1e-6


def fit_strokes(ink: np.ndarray) -> tuple[np.ndarray, float]:
    """``ink`` (float [0, 1], cropped to its box) with its strokes brought into MNIST's
    range where they are far outside it; and its width at 28x28 (rough
    where it is plainly inside the range: ``_measure``).

    The very array when the width is inside ``[THIN, THICK]``. Otherwise the ink is
    returned dilated or eroded, at least ``CORRECT_SIDE`` big (enlarged first if
    smaller), for the caller to reduce to 20x20 as it would any crop.
    """
    w28, length = _measure(ink, quick=True)
    if THIN <= w28 <= THICK or w28 == 0 or (w28 > THICK and length < MIN_LENGTH):
        return ink, w28
    big = ink if max(ink.shape) >= CORRECT_SIDE * 3 // 4 else _resized(ink, CORRECT_SIDE)
    side = max(big.shape)
    # at the scale the disk acts on; the median, as the joints of thick strokes (wider than
    # the strokes) must not make the disk thin the strokes themselves too far
    w = _ridge_width(big >= 0.5 * float(big.max()), np.median)
    # a disk of radius r moves every edge by r: the stroke gains 2r and so does the box,
    # so (w + 2r) * 20 / (side + 2r) = goal gives r (negative: erode)
    goal = MNIST_MEDIAN if w28 < THIN else ERODE_TO
    r = (goal * side / 20 - w) / (2 * (1 - goal / 20))
    if r > 0:
        disk = _disk(r + 0.5)  # reaches round(r) pixels along the axes
        pad = disk.shape[0] // 2 + 1
        return ndimage.grey_dilation(np.pad(big, pad), footprint=disk), w28
    # eroding may cut a thin joint or a stroke's tail: never into more pieces than before
    pieces = ndimage.label(big >= 0.5, EIGHT)[1]
    while -r >= 0.5:
        out = ndimage.grey_erosion(big, footprint=_disk(0.5 - r))
        if 0 < ndimage.label(out >= 0.5, EIGHT)[1] <= pieces:
            return out, w28
        r /= 2
    return ink, w28
