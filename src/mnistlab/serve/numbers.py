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
    to_mnist,
)

__all__ = ["MAX_DIGITS", "DigitRead", "NumberResult", "draw_number", "read_number", "segment"]

MAX_DIGITS = 32
WORK_SIDE = 160  # the ink is segmented on the image reduced until its shorter side is this
SPECK = 0.05  # components under this share of the median digit's area, and low, are noise
WIDE = 1.15  # a group wider than this times its height may be digits that touch
MAX_CUTS = 6  # candidate cuts tried per wide group


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
    small = src.reduce(f) if f > 1 else src
    g = _levels(small, unit, False)
    border = np.sort(_border(g))
    bg = _quantile(border, 0.5)
    if bg + _brightest(-g) > _brightest(g) - bg:  # dark ink on light paper
        g, bg = _levels(small, unit, True), 1 - bg
    r = np.clip(g - bg, 0, None)
    top = _brightest(r)
    if top < 0.08:
        raise PreprocessError(f"{name}: no ink found (the image is blank)", kind="no_ink")
    return np.clip(r / top, 0, 1), float(f)


def _too_many(name: str, count: int) -> PreprocessError:
    return PreprocessError(
        f"{name}: {count} digits found, more than {MAX_DIGITS}; crop it to one number",
        kind="too_many_digits",
    )


def _groups(mask: np.ndarray, name: str) -> list[np.ndarray]:
    """Boolean masks, one per digit candidate, left to right: components with specks
    dropped and the parts of one digit merged. Cutting only adds digits, so more than
    ``MAX_DIGITS`` groups is refused here, before a mask is made for each."""
    labels, n = ndimage.label(mask, structure=EIGHT)
    if n == 0:
        return []
    slices = ndimage.find_objects(labels)
    areas = np.bincount(labels.ravel())[1:]
    heights = np.array([s[0].stop - s[0].start for s in slices])
    big = areas >= SPECK * np.median(areas[areas >= 0.2 * areas.max()])
    keep = [i for i in range(n) if big[i] or heights[i] >= 0.5 * np.median(heights[big])]
    # [x0, x1, y0, y1, ids] per component, left to right
    spans = sorted(
        (
            [s[1].start, s[1].stop, s[0].start, s[0].stop, [i + 1]]
            for i, s in ((i, slices[i]) for i in keep)
        ),
        key=lambda s: s[0],
    )
    merged: list[list] = []
    for x0, x1, y0, y1, ids in spans:
        if merged:
            m = merged[-1]
            across = min(m[1], x1) - max(m[0], x0)  # overlap in x
            down = min(m[3], y1) - max(m[2], y0)  # overlap in y
            # parts of one digit lie one above the other (a 5's top stroke, a broken 4);
            # neighbours side by side, even slanted into each other's columns, do not
            stacked = down <= 0.5 * min(m[3] - m[2], y1 - y0)
            if across >= 0.5 * min(m[1] - m[0], x1 - x0) and stacked:
                m[:4] = min(m[0], x0), max(m[1], x1), min(m[2], y0), max(m[3], y1)
                m[4] = m[4] + ids
                continue
        merged.append([x0, x1, y0, y1, ids])
    # a flat piece (a 5's top bar, a 7's crossbar drawn apart) is no digit: it joins the
    # neighbour it overlaps most in x, or the nearer one
    tall = np.median([m[3] - m[2] for m in merged])
    i = 0
    while len(merged) > 1 and i < len(merged):
        m = merged[i]
        if m[3] - m[2] >= 0.45 * tall:
            i += 1
            continue
        near = [j for j in (i - 1, i + 1) if 0 <= j < len(merged)]
        j = max(near, key=lambda j: min(m[1], merged[j][1]) - max(m[0], merged[j][0]))
        o = merged[j]
        o[:4] = min(o[0], m[0]), max(o[1], m[1]), min(o[2], m[2]), max(o[3], m[3])
        o[4] = o[4] + m[4]
        del merged[i]
        i = 0
    if len(merged) > MAX_DIGITS:
        raise _too_many(name, len(merged))
    return [np.isin(labels, m[4]) for m in merged]


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _digit(ink: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
    """The (28, 28) MNIST digit of the ink under ``mask`` alone."""
    x0, y0, x1, y1 = _box(mask)
    piece = np.where(mask, ink, 0)[y0:y1, x0:x1].astype(np.float32)
    return to_mnist(Image.fromarray(np.pad(piece, 4), "F"), name)


class _Count:
    """Digits found so far, every group counted as one until it is cut: a cut that takes
    the count past ``MAX_DIGITS`` refuses the image at once, which bounds the cutting
    (and the classifier's work) for any image, a few kB of wavy lines included."""

    def __init__(self, groups: int, name: str) -> None:
        self.digits, self.name = groups, name

    def one_more(self) -> None:
        self.digits += 1
        if self.digits > MAX_DIGITS:
            raise _too_many(self.name, self.digits)


def _split(predictor, ink, mask, height: float, count: _Count, depth: int = 0) -> list:
    """``mask`` as one digit, or cut in two where the classifier is surest of both sides
    (and each side again while it stays wide)."""
    name = count.name
    x0, _, x1, _ = _box(mask)
    w = x1 - x0
    if w <= WIDE * height or depth > 5:
        return [mask]
    profile = ndimage.uniform_filter1d((ink * mask).sum(0)[x0:x1].astype(np.float64), 3)
    lo, hi = max(1, int(0.25 * w)), min(w - 1, int(0.75 * w))
    order = np.argsort(profile[lo:hi])[: MAX_CUTS * 3] + lo
    cuts: list[int] = []
    for c in order:  # the lowest points, a few pixels apart
        if all(abs(c - d) > 2 for d in cuts):
            cuts.append(int(c))
        if len(cuts) == MAX_CUTS:
            break
    cols = np.arange(mask.shape[1])
    best, best_score = None, -1.0
    for c in cuts:
        left, right = mask & (cols < x0 + c), mask & (cols >= x0 + c)
        if not left.any() or not right.any():
            continue
        digits = np.stack([_digit(ink, left, name), _digit(ink, right, name)])
        score = float(predictor.probs(digits).max(1).min())
        if score > best_score:
            best, best_score = (left, right), score
    if best is None:
        return [mask]
    whole = float(predictor.probs(_digit(ink, mask, name)[None]).max())
    if whole >= best_score and w <= 1.5 * height:  # one wide digit after all
        return [mask]
    count.one_more()
    return [
        part for side in best for part in _split(predictor, ink, side, height, count, depth + 1)
    ]


def segment(predictor, img: Image.Image, name: str = "image") -> tuple[list, np.ndarray, float]:
    """(digit masks left to right, the ink they are masks of, its reduction factor)."""
    ink, f = _ink(img, name)
    mask = ink > _otsu(ink)
    groups = _groups(mask, name)
    if not groups:
        raise PreprocessError(f"{name}: no ink found", kind="no_ink")
    height = float(np.median([_box(g)[3] - _box(g)[1] for g in groups]))
    count = _Count(len(groups), name)
    return [m for g in groups for m in _split(predictor, ink, g, height, count)], ink, f


def read_number(predictor, img: Image.Image, name: str = "image") -> NumberResult:
    """The number written in ``img`` (a row of digits): each digit's label, confidence and
    box, and the number as a string. ``predictor``: ``serve.predict.load_predictor(run)``."""
    masks, ink, f = segment(predictor, img, name)
    probs = predictor.probs(np.stack([_digit(ink, m, name) for m in masks]))
    digits = []
    for m, p in zip(masks, probs, strict=True):
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
