"""Read a whole number: a row of handwritten digits, left to right.

``read_number(predictor, image)`` finds the ink as ``to_mnist`` does (polarity,
background, Otsu's threshold), then segments it into digits:

1. the 8-connected components of the ink, specks dropped;
2. parts of one digit merged: components one above the other that overlap in x by
   half the narrower one's width (a 5's detached top stroke, a 4 broken in two);
3. digits that touch split: a group much wider than a digit is cut at one of the
   low points of its vertical ink profile, the cut the classifier is most
   confident about on both sides, again on each side while it stays wide.

Each digit, its own ink only, then goes through ``to_mnist`` and the model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from .preprocess import (
    EIGHT,
    PreprocessError,
    _border,
    _brightest,
    _levels,
    _otsu,
    _quantile,
    _source,
    no_ink,
    to_mnist,
)

__all__ = ["MAX_DIGITS", "DigitRead", "NumberResult", "draw_number", "read_number", "segment"]

MAX_DIGITS = 32
WORK_SIDE = 160  # the ink is segmented on the image reduced until its shorter side is this
SPECK = 0.05  # components under this share of the median digit's area, and low, are noise
WIDE = 1.15  # a group wider than this times its height may be digits that touch
MAX_CUTS = 6  # candidate cuts tried per wide group
MAX_DEPTH = 5  # cuts of a cut piece, at most: a group gives at most 2 ** (MAX_DEPTH + 1) digits
MAX_MARKS = 64 * MAX_DIGITS  # separate marks (specks dropped) an image of a number may have
MAX_WORK = 4 * 4096 * WORK_SIDE  # pixels of the reduced image: 4x the web app's widest


@dataclass
class DigitRead:
    label: str
    confidence: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the original image's pixels
    probabilities: list[float] = field(default_factory=list)


@dataclass
class NumberResult:
    number: str  # a string: leading zeros survive
    confidence: float  # the product of the digits' confidences
    digits: list[DigitRead]

    def to_json(self) -> dict:
        return {
            "number": self.number,
            "confidence": self.confidence,
            "digits": [
                {"label": d.label, "confidence": d.confidence, "box": list(d.box)}
                for d in self.digits
            ],
        }


def _ink(img: Image.Image, name: str) -> tuple[np.ndarray, float]:
    """Ink in [0, 1] (white on black) of ``img`` reduced until its shorter side is at most
    ``WORK_SIDE``, and the reduction factor."""
    src, unit, _ = _source(img, name)
    # a row of digits is wide: its height, not its length, sets the digits' resolution
    f = max(1, -(-min(src.size) // WORK_SIDE))
    if -(-src.width // f) * -(-src.height // f) > MAX_WORK:  # before any full-size work
        raise PreprocessError(
            f"{name}: {src.width}x{src.height} is too long a strip to read as one number "
            f"(over {MAX_WORK:,} pixels at {WORK_SIDE} px high); crop it to the number",
            kind="too_large",
        )
    small = src.reduce(f) if f > 1 else src
    g = _levels(small, unit, False)
    border = np.sort(_border(g))
    bg = _quantile(border, 0.5)
    if bg + _brightest(-g) > _brightest(g) - bg:  # dark ink on light paper
        g, bg = _levels(small, unit, True), 1 - bg
    r = np.clip(g - bg, 0, None)
    top = _brightest(r)
    if top < 0.08:
        raise no_ink(img, name, "the image is blank")
    return np.clip(r / top, 0, 1), float(f)


def _too_many(name: str, count: int, at_least: bool = False) -> PreprocessError:
    found = f"at least {count}" if at_least else f"{count}"
    return PreprocessError(
        f"{name}: {found} digits found, more than {MAX_DIGITS}; crop it to one number",
        kind="too_many_digits",
    )


def _boxes(labels: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """Area, x0, x1, y0, y1 (stop exclusive) of components 1..n, each an (n,) array: one
    sort of the ink's pixels by label (``ndimage.find_objects`` makes a Python slice per
    component, 0.3 s for 160,000 specks)."""
    ys, xs = np.nonzero(labels)
    ids = labels[ys, xs]
    order = np.argsort(ids, kind="stable")
    ids, ys, xs = ids[order], ys[order], xs[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])  # every label 1..n has a pixel
    area = np.diff(np.r_[starts, len(ids)])
    lo, hi = np.minimum.reduceat, np.maximum.reduceat
    return area, lo(xs, starts), hi(xs, starts) + 1, lo(ys, starts), hi(ys, starts) + 1


def _x_clusters(x0: np.ndarray, x1: np.ndarray) -> int:
    """How many runs of components overlap in x, one after another: merging needs an
    overlap in x, so no group spans two runs."""
    order = np.argsort(x0, kind="stable")
    reach = np.maximum.accumulate(x1[order])
    return 1 + int(np.count_nonzero(x0[order][1:] >= reach[:-1]))


def _groups(mask: np.ndarray, name: str) -> list[tuple[int, int, np.ndarray]]:
    """Digit candidates left to right, each (y0, x0, its mask cut to its box): components
    with specks dropped and the parts of one digit merged. Cutting only adds digits, so
    an image that must end with more than ``MAX_DIGITS`` groups is refused here, first
    from a bound counted on arrays (before any loop over components), then exactly."""
    labels, n = ndimage.label(mask, structure=EIGHT)
    if n == 0:
        return []
    areas, bx0, bx1, by0, by1 = _boxes(labels, n)
    heights = by1 - by0
    big = areas >= SPECK * np.median(areas[areas >= 0.2 * areas.max()])
    keep = np.flatnonzero(big | (heights >= 0.5 * np.median(heights[big])))
    # every merge below needs an overlap in x, and the flat-piece merge keeps at least
    # half the groups (those at least the median height): more than twice MAX_DIGITS
    # runs of overlapping components can never come under the limit
    runs = _x_clusters(bx0[keep], bx1[keep])
    if runs > 2 * MAX_DIGITS:
        raise _too_many(name, -(-runs // 2), at_least=True)
    if len(keep) > MAX_MARKS:  # bounds the loops below for any image
        raise PreprocessError(
            f"{name}: {len(keep):,} separate marks found, more than {MAX_MARKS:,} for at most "
            f"{MAX_DIGITS} digits; crop it to one number",
            kind="too_many_digits",
        )
    keep = keep[np.argsort(bx0[keep], kind="stable")]  # left to right
    # [x0, x1, y0, y1, ids] per component
    boxes = (a[keep].tolist() for a in (bx0, bx1, by0, by1))
    spans = zip(*boxes, (keep + 1).tolist(), strict=True)
    merged: list[list] = []
    for x0, x1, y0, y1, i in spans:
        if merged:
            m = merged[-1]
            across = min(m[1], x1) - max(m[0], x0)  # overlap in x
            down = min(m[3], y1) - max(m[2], y0)  # overlap in y
            # parts of one digit lie one above the other (a 5's top stroke, a broken 4);
            # neighbours side by side, even slanted into each other's columns, do not
            stacked = down <= 0.5 * min(m[3] - m[2], y1 - y0)
            if across >= 0.5 * min(m[1] - m[0], x1 - x0) and stacked:
                m[:4] = min(m[0], x0), max(m[1], x1), min(m[2], y0), max(m[3], y1)
                m[4].append(i)
                continue
        merged.append([x0, x1, y0, y1, [i]])
    merged = _join_flat(merged)
    if len(merged) > MAX_DIGITS:
        raise _too_many(name, len(merged))
    group = np.zeros(n + 1, np.intp)  # label -> its group (1..), one pass for all groups
    for g, m in enumerate(merged):
        group[m[4]] = g + 1
    return [
        _tight(y0, x0, group[labels[y0:y1, x0:x1]] == g + 1)
        for g, (x0, x1, y0, y1, _) in enumerate(merged)
    ]


def _join_flat(merged: list[list]) -> list[list]:
    """A flat piece (a 5's top bar, a 7's crossbar drawn apart) is no digit: it joins the
    neighbour it overlaps most in x, or the nearer one (the left one on a tie). One pass
    left to right: a join only grows a neighbour, so what lies left of a flat piece stays
    tall, and the first flat piece left is never before it."""
    tall = np.median([m[3] - m[2] for m in merged])
    out: list[list] = []
    for k, m in enumerate(merged):
        if len(out) + len(merged) - k <= 1 or m[3] - m[2] >= 0.45 * tall:
            out.append(m)
            continue
        near = ([out[-1]] if out else []) + ([merged[k + 1]] if k + 1 < len(merged) else [])
        o = max(near, key=lambda o: min(m[1], o[1]) - max(m[0], o[0]))
        o[:4] = min(o[0], m[0]), max(o[1], m[1]), min(o[2], m[2]), max(o[3], m[3])
        o[4] = o[4] + m[4]
    return out


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
    if whole >= best_score and w <= 1.5 * height:  # one wide digit after all
        return [piece]
    count.one_more()
    return [
        part for side in best for part in _split(predictor, ink, side, height, count, depth + 1)
    ]


def _pieces(predictor, img: Image.Image, name: str, cpu_budget: float | None = None):
    """(the digits' pieces left to right, the ink, its reduction factor, the _Count that
    holds each piece's 28x28 digit)."""
    ink, f = _ink(img, name)
    mask = ink > _otsu(ink)
    groups = _groups(mask, name)
    if not groups:
        raise no_ink(img, name)
    height = float(np.median([g[2].shape[0] for g in groups]))
    # what the cutting must end with at least, known before any cut is tried: an image
    # that must end over the limit is refused now, not after hundreds of drawn digits
    least = sum(_least_digits(g, height) for g in groups)
    if least > MAX_DIGITS:
        raise _too_many(name, least, at_least=True)
    count = _Count(len(groups), name, cpu_budget)
    pieces = [p for g in groups for p in _split(predictor, ink, g, height, count)]
    return pieces, ink, f, count


def segment(predictor, img: Image.Image, name: str = "image") -> tuple[list, np.ndarray, float]:
    """(digit masks left to right, each the size of the ink, the ink they are masks of,
    its reduction factor)."""
    pieces, ink, f, _ = _pieces(predictor, img, name)
    masks = []
    for y0, x0, m in pieces:
        full = np.zeros(ink.shape, bool)
        full[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]] = m
        masks.append(full)
    return masks, ink, f


def read_number(
    predictor, img: Image.Image, name: str = "image", cpu_budget: float | None = None
) -> NumberResult:
    """The number written in ``img`` (a row of digits): each digit's label, confidence and
    box, and the number as a string. ``predictor``: ``serve.predict.load_predictor(run)``.
    ``cpu_budget``: seconds of this thread's CPU the segmentation may take before the
    image is refused (``kind="too_complex"``); None for no limit."""
    pieces, ink, f, count = _pieces(predictor, img, name, cpu_budget)
    probs = predictor.probs(np.stack([count.digit(ink, m) for m in pieces]))
    digits = []
    for m, p in zip(pieces, probs, strict=True):
        k = int(np.argmax(p))
        x0, y0, x1, y1 = _box(m)
        box = (int(x0 * f), int(y0 * f), int(min(img.width, x1 * f)), int(min(img.height, y1 * f)))
        digits.append(DigitRead(predictor.class_names[k], float(p[k]), box, p.tolist()))
    number = "".join(d.label for d in digits)
    confidence = float(np.prod([d.confidence for d in digits]))
    return NumberResult(number, confidence, digits)


def draw_number(img: Image.Image, result: NumberResult, width: int = 800) -> Image.Image:
    """``img`` (shown as RGB, at most ``width`` wide) with each digit's box and label."""
    from PIL import ImageDraw

    from .preprocess import for_display

    shown = for_display(img)
    k = min(1.0, width / shown.width)
    if k < 1:
        shown = shown.resize((round(shown.width * k), max(1, round(shown.height * k))))
    draw = ImageDraw.Draw(shown)
    for d in result.digits:
        x0, y0, x1, y1 = (round(v * k) for v in d.box)
        draw.rectangle((x0, y0, x1, y1), outline=(220, 30, 30), width=2)
        draw.text((x0 + 2, max(0, y0 - 12)), f"{d.label} {d.confidence:.0%}", fill=(220, 30, 30))
    return shown
