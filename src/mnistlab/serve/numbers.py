"""Read a whole number: a row of handwritten digits, left to right, as it is written.

``read_number(predictor, image)`` finds the ink as ``to_mnist`` does (polarity,
background, Otsu's threshold), then segments it:

1. the 8-connected components of the ink; marks under ``TINY`` of a digit's area are
   noise, and so are small low marks that are no separator (specks);
2. a row that is no row is said so (``problem``): two rows, or digits on their side;
3. separators taken out by their geometry against the row (``separators.py``): dash,
   point, comma, colon; points and commas are no longer dropped as specks;
4. parts of one digit merged: components one above the other that overlap in x by
   half the narrower one's width (a 5's detached top stroke, a 4 broken in two), and
   flat pieces joined to a neighbour; a tall thin mark leaning far right is a slash;
5. digits that touch split (``cutting.py``).

Each digit, its own ink only, then goes through ``to_mnist`` and the model's ``judge``:
marks it says are no digit are skipped (and listed). Spaces are wide gaps between
groups (``separators.spaces``), and the text keeps separators and spaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from .cutting import MAX_DIGITS, _box, _Count, _least_digits, _split, _tight, _too_many
from .number_result import DigitRead, NumberResult, Separator, draw_number
from .preprocess import (
    EIGHT,
    PreprocessError,
    _brightest,
    _levels,
    _otsu,
    _source,
    no_ink,
    paper_level,
)
from .separators import NOT_DIGITS, TINY, find_separators, is_slash, row_problem, written

__all__ = [
    "MAX_DIGITS",
    "DigitRead",
    "NumberResult",
    "Separator",
    "draw_number",
    "read_number",
    "segment",
]

WORK_SIDE = 160  # the ink is segmented on the image reduced until its shorter side is this
SPECK = 0.05  # components under this share of the median digit's area, and low, are noise
BODY = 0.75  # marks this share of a digit's height are digits (or parts of one, or slashes)
MAX_MARKS = 64 * MAX_DIGITS  # separate marks (specks dropped) an image of a number may have
MAX_WORK = 4 * 4096 * WORK_SIDE  # pixels of the reduced image: 4x the web app's widest


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
    # the polarity and the paper as to_mnist finds them: bold digits filling the row's
    # height put their strokes on the border, which then is not the paper
    g = _levels(small, unit, False)
    dark, bg = paper_level(g)
    r = np.clip((_levels(small, unit, True) if dark else g) - bg, 0, None)
    top = _brightest(r)
    if top < 0.08:
        raise no_ink(img, name, "the image is blank")
    return np.clip(r / top, 0, 1), float(f)


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


@dataclass
class _Marks:
    """What the ink holds: digit candidates left to right, each (y0, x0, its mask cut to
    its box); separators, each (kind, (x0, y0, x1, y1)) on the reduced image; or why it
    is no single row (then nothing else)."""

    groups: list = field(default_factory=list)
    separators: list = field(default_factory=list)
    problem: str | None = None


def _groups(mask: np.ndarray, name: str) -> list[tuple[int, int, np.ndarray]]:
    """The digit candidates of ``_marks``."""
    return _marks(mask, name).groups


def _marks(mask: np.ndarray, name: str) -> _Marks:
    """Digit candidates: components with specks dropped, separators taken out (see
    ``separators.py``), the parts of one digit merged. Cutting only adds digits, so an
    image that must end with more than ``MAX_DIGITS`` groups is refused here, first from
    a bound counted on arrays (before any loop over components), then exactly."""
    labels, n = ndimage.label(mask, structure=EIGHT)
    if n == 0:
        return _Marks()
    areas, bx0, bx1, by0, by1 = _boxes(labels, n)
    heights = by1 - by0
    ref = np.median(areas[areas >= 0.2 * areas.max()])  # a digit's area
    big = areas >= SPECK * ref
    digit_h = float(np.median(heights[big]))
    tall = heights >= 0.5 * digit_h
    keep = np.flatnonzero(big | tall)
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
    body = np.flatnonzero(big & (heights >= BODY * digit_h))  # digit-sized marks
    row_h = float(np.median(heights[body]))  # a digit's height (specks and pieces aside)
    problem = row_problem(bx0[body], bx1[body], by0[body], by1[body])
    if problem:
        return _Marks(problem=problem)
    # points and commas are small and low: kept here, where today's specks were dropped
    # smaller than a digit, against the upper quartile here: a digit in pieces or a comma
    # must not pull the median down to their own size
    sized = big & (heights >= BODY * np.percentile(heights[big], 75))
    small = np.flatnonzero(~sized & (areas >= TINY * ref))
    cover = np.flatnonzero(big & tall)
    found = find_separators((areas, bx0, bx1, by0, by1), small, cover, mask.shape[1])
    seps = [
        (kind, (int(bx0[i].min()), int(by0[i].min()), int(bx1[i].max()), int(by1[i].max())))
        for kind, i in ((kind, np.array(ids)) for kind, ids in found)
    ]
    if found:
        keep = np.setdiff1d(keep, np.array([i for _, ids in found for i in ids], np.intp))
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
            # a slanted 1 broken in two: short halves, one above the other, barely
            # overlapping in x, together no taller or wider than a 1
            halves = (
                down <= 0
                and across >= -0.1 * row_h
                and max(m[3] - m[2], y1 - y0) < BODY * row_h
                and max(m[3], y1) - min(m[2], y0) <= 1.3 * row_h
                and max(m[1], x1) - min(m[0], x0) <= 0.6 * row_h
            )
            if (across >= 0.5 * min(m[1] - m[0], x1 - x0) and stacked) or halves:
                m[:4] = min(m[0], x0), max(m[1], x1), min(m[2], y0), max(m[3], y1)
                m[4].append(i)
                continue
        merged.append([x0, x1, y0, y1, [i]])
    if not merged:
        return _Marks(separators=seps)
    merged = _join_flat(merged, row_h)
    if len(merged) > 2 * MAX_DIGITS:  # bounds the slash test: digits and slashes between
        raise _too_many(name, len(merged) // 2, at_least=True)
    height = float(np.median([m[3] - m[2] for m in merged]))
    group = np.zeros(n + 1, np.intp)  # label -> its group (1..), one pass for all groups
    for g, m in enumerate(merged):
        group[m[4]] = g + 1
    pieces = [
        _tight(y0, x0, group[labels[y0:y1, x0:x1]] == g + 1)
        for g, (x0, x1, y0, y1, _) in enumerate(merged)
    ]
    digits = []
    for p in pieces:
        if len(merged) > 1 and is_slash(p[2], height):
            seps.append(("slash", _box(p)))
        else:
            digits.append(p)
    if len(digits) > MAX_DIGITS:
        raise _too_many(name, len(digits))
    return _Marks(digits, seps)


def _join_flat(merged: list[list], row_h: float = 0.0) -> list[list]:
    """A flat piece (a 5's top bar, a 7's crossbar drawn apart) is no digit: it joins the
    neighbour it overlaps most in x, or the nearer one (the left one on a tie). One pass
    left to right: a join only grows a neighbour, so what lies left of a flat piece stays
    tall, and the first flat piece left is never before it."""
    # the median group, or the median digit-sized mark where that is taller: with two
    # groups, a 5's body and its bar, the median is halfway down to the bar
    tall = max(np.median([m[3] - m[2] for m in merged]), row_h)
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


def _pieces(predictor, img: Image.Image, name: str, cpu_budget: float | None = None):
    """(the digits' pieces left to right, the ink's marks (separators, problem), the ink,
    its reduction factor, the _Count that holds each piece's 28x28 digit)."""
    ink, f = _ink(img, name)
    mask = ink > _otsu(ink)
    marks = _marks(mask, name)
    if marks.problem or (marks.separators and not marks.groups):
        return [], marks, ink, f, None
    groups = marks.groups
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
    return pieces, marks, ink, f, count


def segment(predictor, img: Image.Image, name: str = "image") -> tuple[list, np.ndarray, float]:
    """(digit masks left to right, each the size of the ink, the ink they are masks of,
    its reduction factor)."""
    pieces, _, ink, f, _ = _pieces(predictor, img, name)
    masks = []
    for y0, x0, m in pieces:
        full = np.zeros(ink.shape, bool)
        full[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]] = m
        masks.append(full)
    return masks, ink, f


def _judge(predictor, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``predictor.judge``: (probs, digit scores, is a digit); a stand-in with ``probs``
    alone counts everything as a digit."""
    if hasattr(predictor, "judge"):
        return predictor.judge(digits)
    probs = predictor.probs(digits)
    return probs, probs.max(1), np.ones(len(probs), bool)


def read_number(
    predictor, img: Image.Image, name: str = "image", cpu_budget: float | None = None
) -> NumberResult:
    """The number written in ``img`` (a row of digits): each digit's label, confidence and
    box, the separators and spaces between them (``text``), marks that are neither
    (``skipped``), or why the row cannot be read (``problem``).
    ``predictor``: ``serve.predict.load_predictor(run)``. ``cpu_budget``: seconds of this
    thread's CPU the segmentation may take before the image is refused
    (``kind="too_complex"``); None for no limit."""
    pieces, marks, ink, f, count = _pieces(predictor, img, name, cpu_budget)

    def scaled(box) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = box
        return int(x0 * f), int(y0 * f), int(min(img.width, x1 * f)), int(min(img.height, y1 * f))

    if marks.problem:
        return NumberResult("", 0.0, [], "", problem=marks.problem)
    seps = [Separator(kind, scaled(box)) for kind, box in marks.separators]
    if not pieces:  # separators alone
        return NumberResult("", 0.0, [], "", seps, problem=NOT_DIGITS)
    probs, scores, ok = _judge(predictor, np.stack([count.digit(ink, m) for m in pieces]))
    digits, skipped = [], []
    items = []  # (box on the reduced image, text, is a digit) of every mark
    for m, p, score, is_digit in zip(pieces, probs, scores, ok, strict=True):
        k = int(np.argmax(p))
        if not is_digit:
            skipped.append(scaled(_box(m)))
            items.append((_box(m), "", False))
            continue
        label = predictor.class_names[k]
        digits.append(DigitRead(label, float(p[k]), scaled(_box(m)), p.tolist(), float(score)))
        items.append((_box(m), label, True))
    items += [(box, Separator(kind, box).text, False) for kind, box in marks.separators]
    text = written(items, float(np.median([p[2].shape[0] for p in pieces])))
    number = "".join(d.label for d in digits)
    if not digits or 2 * len(skipped) > len(pieces) + len(seps):
        return NumberResult("", 0.0, [], "", seps, skipped, NOT_DIGITS)  # digits: none read
    confidence = float(np.prod([d.confidence for d in digits]))
    return NumberResult(number, confidence, digits, text, seps, skipped)
