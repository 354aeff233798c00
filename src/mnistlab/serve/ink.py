"""The paper and the ink's polarity, as ``to_mnist`` (and ``read_number``) find them on
an image's grey levels, (H, W) float32 in [0, 1].

Split from ``preprocess`` (which imports these names from here): a digit filling its
frame edge to edge, bold strokes cropped to their ink, covers much of the border these
are judged from, and this is how the border is read then.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["NOISE_FACTOR", "paper_level"]

NOISE_FACTOR = 5.0  # the ink must stand out from the paper by this many times its noise
FILLS = 0.05  # a border this much above the paper (or more): a digit filling its frame ...
ALIKE = 0.5  # ... where neighbouring pixels are this alike (correlated): ink, not noise


def _brightest(g: np.ndarray) -> float:
    """The brightest level two neighbouring pixels share: a lone hot pixel is not ink."""
    pairs = [np.minimum(g[:, 1:], g[:, :-1]), np.minimum(g[1:], g[:-1])]
    found = [float(p.max()) for p in pairs if p.size]
    return max(found) if found else float(g.max())


def _border(g: np.ndarray) -> np.ndarray:
    """The pixels of a frame 5% of the shorter side wide (at least 1), flattened."""
    h, w = g.shape
    k = max(1, round(0.05 * min(h, w)))
    return np.concatenate([g[:k].ravel(), g[-k:].ravel(), g[:, :k].ravel(), g[:, -k:].ravel()])


def _quantile(ordered: np.ndarray, q: float) -> float:
    return float(ordered[round(q * (len(ordered) - 1))])


def _corners(g: np.ndarray) -> np.ndarray:
    """The border's four corner squares (as wide as the border), flattened."""
    k = max(1, round(0.05 * min(g.shape)))
    return np.concatenate([g[:k, :k], g[:k, -k:], g[-k:, :k], g[-k:, -k:]], axis=None)


def _dark_ink(g: np.ndarray) -> bool:
    """Whether the ink of grey levels ``g`` is dark: the background is the border's median,
    the ink whichever side, darker or lighter, lies further from it (judged by the extremes
    two neighbouring pixels share, so a digit covering 1% of a page counts). Where a
    quarter to three quarters of the border lie on each side of half-way between the
    extremes, a bold digit fills its frame and its strokes may be most of the border: the
    corners, which a digit rarely reaches, are the background where 3/4 of their pixels agree
    (of 1,000 MNIST digits cropped to their ink and thickened by a 7x7 grey dilation, the
    border's median alone takes the strokes for paper in 1.5-1.7%, this in 0.3%)."""
    border = _border(g)
    dim, bright = -_brightest(-g), _brightest(g)
    half = (dim + bright) / 2
    bg = _quantile(np.sort(border), 0.5)
    if 0.25 <= np.mean(border < half) <= 0.75:
        corners = _corners(g)
        if not 0.25 < np.mean(corners < half) < 0.75:
            bg = _quantile(np.sort(corners), 0.5)
    return bg - dim > bright - bg


def _paper(g: np.ndarray) -> tuple[float, float] | None:
    """The paper's level and noise where a digit fills its frame (``g``: levels, the ink
    bright), else None: then the border's median and the spread below it are the paper's.

    A bold digit cropped to its ink covers much of its border: its strokes and their
    anti-aliased edges put the border's median above the paper, called the paper's noise
    as strong as the ink, and the digit blank. Where ``FILLS`` of the border or more lies
    a quarter of the way from the paper (the lower of the border's and the image's 5th
    percentiles) to the ink or further, the paper is what lies below: its level the
    lowest 1/64-wide bin holding half as many as the commonest (a border mostly ink keeps
    little paper), its noise the spread below that level. Only where what lies above is
    ink, as measured on MNIST digits cropped to their ink against blank pages, noise, and
    photos in uneven light (docs/handwriting.md): it stands out from the paper as ink
    must; the image is regions, not noise (neighbouring pixels correlated by ``ALIKE``);
    ink meets paper at an edge; and it lies at the strokes, not in a shadow."""
    border = np.sort(_border(g))
    # the image's 5th percentile, of every other pixel, to 1/256 by a histogram (faster
    # than a partition of many equal levels: 0.25 ms at 128x128)
    every = np.minimum(g[::2, ::2] * 256, 255).astype(np.intp).ravel()
    at = np.searchsorted(np.cumsum(np.bincount(every, minlength=256)), 0.05 * every.size)
    lo = min(_quantile(border, 0.05), at / 256)
    span = _brightest(g) - lo
    n = int(np.searchsorted(border, lo + span / 4))
    if not 0 < n <= (1 - FILLS) * len(border):
        return None
    paper = border[:n]
    bins = np.minimum(paper * 64, 63).astype(np.intp)
    counts = np.bincount(bins)
    level = float(np.median(paper[bins == np.argmax(counts >= counts.max() / 2)]))
    noise = level - _quantile(paper[: int(np.searchsorted(paper, level, "right"))], 0.32)
    if _quantile(border[n:], 0.5) - level < NOISE_FACTOR * noise:
        return None
    # neighbours' correlation, 1 - E[(a - b)^2] / (2 var), along strokes: the higher of
    # across and down (a narrow bar at 16 px is alike only down)
    steps = [np.mean(np.square(np.diff(g, axis=a))) for a in (0, 1) if g.shape[a] > 1]
    if 1 - min(steps, default=2 * float(g.var())) / (2 * float(g.var())) < ALIKE:
        return None
    # ink meets paper at an edge: somewhere the level rises by half the ink's strength
    # within a sixteenth of the image (light falling off across a blank page rises slowly)
    d = max(2, round(max(g.shape) / 16))
    rise = max(np.abs(g[:, d:] - g[:, :-d]).max(initial=0), np.abs(g[d:] - g[:-d]).max(initial=0))
    if rise < span / 2:
        return None
    # and what is above the paper is at the ink: most of it within a sixteenth of the
    # image of strong ink (three quarters of the way, two pixels at least: not a speck
    # of noise); on a photo in uneven light it is paper in shadow, away from the strokes
    strong = np.zeros(g.shape, np.uint8)  # (H, W): 2x2 blocks all three quarters up
    strong[:-1, :-1] = (
        np.minimum(np.minimum(g[:-1, :-1], g[1:, 1:]), np.minimum(g[1:, :-1], g[:-1, 1:]))
        >= lo + 3 * span / 4
    )
    near = _border(ndimage.maximum_filter(strong, 2 * d + 1))[_border(g) >= lo + span / 4]
    return (level, noise) if near.mean() >= 0.5 else None


def paper_level(g: np.ndarray) -> tuple[bool, float]:
    """(whether the ink is dark, the paper's level once the ink is made bright) of grey
    levels ``g`` in [0, 1] (H, W), as ``to_mnist`` finds them: the border's median, or
    where a digit fills its frame, the paper's level without the ink on the border."""
    dark = _dark_ink(g)
    g = 1 - g if dark else g
    filled = _paper(g)
    return dark, filled[0] if filled else _quantile(np.sort(_border(g)), 0.5)
