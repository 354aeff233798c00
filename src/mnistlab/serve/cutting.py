"""Cutting digits that touch: a group much wider than a digit is cut at one of the low
points of its vertical ink profile, the cut the classifier is most confident about on
both sides, again on each side while it stays wide (``serve/numbers.py`` step 3)."""

from __future__ import annotations

import math
import time

import numpy as np
from PIL import Image
from scipy import ndimage

from .preprocess import PreprocessError, to_mnist

MAX_DIGITS = 32
WIDE = 1.15  # a group wider than this times its height may be digits that touch
MAX_CUTS = 6  # candidate cuts tried per wide group
MAX_DEPTH = 5  # cuts of a cut piece, at most: a group gives at most 2 ** (MAX_DEPTH + 1) digits
SURE_WHOLE = 0.99  # a group read whole this surely may be up to twice as wide as tall


def _too_many(name: str, count: int, at_least: bool = False) -> PreprocessError:
    found = f"at least {count}" if at_least else f"{count}"
    return PreprocessError(
        f"{name}: {found} digits found, more than {MAX_DIGITS}; crop it to one number",
        kind="too_many_digits",
    )


def _tight(y0: int, x0: int, mask: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(y0, x0, mask) cut to the mask's ink (at least one pixel)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    r0, c0 = int(rows[0]), int(cols[0])
    return y0 + r0, x0 + c0, mask[r0 : rows[-1] + 1, c0 : cols[-1] + 1]


def _box(piece: tuple[int, int, np.ndarray]) -> tuple[int, int, int, int]:
    y0, x0, m = piece
    return x0, y0, x0 + m.shape[1], y0 + m.shape[0]


def _least_digits(piece: tuple[int, int, np.ndarray], height: float) -> int:
    """The fewest digits ``piece`` can hold: its ink columns / 1.5 ``height``, since no
    digit is wider than that (``_split`` leaves a piece whole only then, and its pieces'
    columns do not overlap). A wider piece could be kept whole only by the cap on cuts
    (``MAX_DEPTH``), which would read several digits as one."""
    x0, _, x1, _ = _box(piece)
    if x1 - x0 <= WIDE * height:
        return 1
    return max(1, math.ceil(np.count_nonzero(piece[2].any(0)) / (1.5 * height)))


class _Count:
    """Digits found so far, every group counted as one until it is cut: a cut that takes
    the count past ``MAX_DIGITS`` refuses the image at once, which bounds the cutting
    (and the classifier's work) for any image, a few kB of wavy lines included. It also
    keeps each piece's 28x28 digit, drawn once, and holds the reading to ``cpu_budget``
    seconds of this thread's CPU, when one is given (the server's bound per request)."""

    def __init__(self, groups: int, name: str, cpu_budget: float | None = None) -> None:
        self.digits, self.name = groups, name
        self.drawn: dict[int, tuple] = {}  # id(piece) -> (piece, its digit)
        self.deadline = None if cpu_budget is None else time.thread_time() + cpu_budget
        self.budget = cpu_budget

    def one_more(self) -> None:
        self.digits += 1
        if self.digits > MAX_DIGITS:
            raise _too_many(self.name, self.digits)

    def digit(self, ink: np.ndarray, piece: tuple[int, int, np.ndarray]) -> np.ndarray:
        """The (28, 28) MNIST digit of the ink under the piece's mask alone."""
        if id(piece) in self.drawn:
            return self.drawn[id(piece)][1]
        if self.deadline is not None and time.thread_time() > self.deadline:
            raise PreprocessError(
                f"{self.name}: reading it as a number took over {self.budget:g} s of CPU "
                f"({self.digits} digits so far); crop it to the number",
                kind="too_complex",
            )
        x0, y0, x1, y1 = _box(piece)
        cut = np.where(piece[2], ink[y0:y1, x0:x1], 0).astype(np.float32)
        digit = to_mnist(Image.fromarray(np.pad(cut, 4), "F"), self.name)
        self.drawn[id(piece)] = piece, digit  # the piece kept alive, so its id stays its own
        return digit


def _split(predictor, ink, piece, height: float, count: _Count, depth: int = 0) -> list:
    """``piece`` as one digit, or cut in two where the classifier is surest of both sides
    (and each side again while it stays wide). All on the piece's box, not the image."""
    x0, y0, x1, y1 = _box(piece)
    mask = piece[2]
    w = x1 - x0
    if w <= WIDE * height or depth > MAX_DEPTH:
        return [piece]
    columns = (ink[y0:y1, x0:x1] * mask).sum(0).astype(np.float64)
    profile = ndimage.uniform_filter1d(columns, 3)
    lo, hi = max(1, int(0.25 * w)), min(w - 1, int(0.75 * w))
    order = np.argsort(profile[lo:hi])[: MAX_CUTS * 3] + lo
    cuts: list[int] = []
    for c in order:  # the lowest points, a few pixels apart
        if all(abs(c - d) > 2 for d in cuts):
            cuts.append(int(c))
        if len(cuts) == MAX_CUTS:
            break
    best, best_score = None, -1.0
    for c in cuts:
        left, right = mask[:, :c], mask[:, c:]
        if not left.any() or not right.any():
            continue
        sides = (_tight(y0, x0, left), _tight(y0, x0 + c, right))
        digits = np.stack([count.digit(ink, s) for s in sides])
        score = float(predictor.probs(digits).max(1).min())
        if score > best_score:
            best, best_score = sides, score
    if best is None:
        return [piece]
    whole = float(predictor.probs(count.digit(ink, piece)[None]).max())
    # one wide digit after all: surer whole than cut, and no wider than a digit can be.
    # MNIST fits a digit's longer side to its box, so a flat 2 or 7 may be twice as wide
    # as tall: read that surely whole, it stays whole (of 1,000 MNIST test digits drawn
    # alone in a row, 98.6% were read right before this, 98.9% after)
    if whole >= best_score and (w <= 1.5 * height or (whole >= SURE_WHOLE and w <= 2.0 * height)):
        return [piece]
    count.one_more()
    return [
        part for side in best for part in _split(predictor, ink, side, height, count, depth + 1)
    ]
