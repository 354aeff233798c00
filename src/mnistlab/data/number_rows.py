"""Images of formatted numbers (phone numbers, prices, dates, times) made of MNIST digits.

``make_row("555-1234", by_label(x, y), rng)`` lays real MNIST digits out in a row as a
person writes them and draws the separators as pen strokes of the digits' width:

- each digit is scaled by ``height / 20`` (x0.9 to 1.1): MNIST's 20 px box becomes
  ``height``, so most digits are ``height`` px high and the few wider than tall are
  less; each stands on the baseline, jittered by up to 6% of the height, the digits
  standing apart: gaps of 20-45% of the height between their ink (no two touch);
- a space is a gap wider by 80-120% of the height;
- a dash ``-`` is a flat stroke 30-50% of the height long, 40-60% of it above the
  baseline; a point ``.`` a dot 1.2-1.8 stroke widths across on the baseline; a comma
  ``,`` that dot with a tail down and to the left, 20-30% of the height below the
  baseline; a slash ``/`` a straight stroke 1.0-1.2 heights tall, leaning right 40-55
  degrees from vertical (steeper slashes look like MNIST's slanted 1s); a colon ``:``
  two dots, one on the baseline and one 50-65% of the height above it.

The canvas is then enlarged 2-5x and, half the time, shown as dark ink on light paper.
Which digits to draw from is the caller's choice: benchmarks and tests pass MNIST's
**test** digits (``load_split("mnist", "test")``), never the training split.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["FORMATS", "SEPARATORS", "by_label", "make_row", "make_text", "masked"]

# name -> pattern: "d" is a random digit, anything else is written as it stands
FORMATS = {
    "phone": "ddd-dddd",
    "price": "dd.dd",
    "thousands": "d,ddd",
    "date": "dddd dd dd",
    "date_slash": "dd/dd/dddd",
    "time": "dd:dd",
    "plain": "ddddd",
}
SEPARATORS = "-.,/:"
STROKE = 0.12  # MNIST's median stroke (2.42 px) over its ink box's height (20 px)
SUPER = 4  # separators are drawn this much larger, then reduced: soft edges like MNIST's


def make_text(pattern: str, rng: np.random.Generator) -> str:
    """``pattern`` with each ``d`` replaced by a random digit."""
    return "".join(str(int(rng.integers(10))) if c == "d" else c for c in pattern)


def masked(text: str) -> str:
    """``text`` with every digit written ``d``: its separators and spaces alone."""
    return "".join("d" if c.isdigit() else c for c in text)


def by_label(digits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """``{"0": (N0, 28, 28) uint8, ...}`` from MNIST arrays ``(N, 28, 28)`` and ``(N,)``."""
    digits, labels = np.asarray(digits), np.asarray(labels)
    return {str(k): digits[labels == k] for k in range(10) if (labels == k).any()}


def _digit(pool: np.ndarray, h: float, rng) -> tuple[np.ndarray, tuple[int, int, int], int]:
    """One digit of ``pool`` cropped to its ink, scaled by ``h / 20`` (float 0..1): MNIST
    fits each digit's longer side to 20 px, so a tall digit becomes ``h`` high and a wide
    one (a flat 2) ``h`` wide, as they stand beside each other in MNIST. And the faint
    margins (left, right, bottom) outside its ink at half strength: the gaps are laid out
    between the ink a reader sees, the faint edges (a fifth of the height, at times)
    drawn too. And which of ``pool`` it is."""
    pick = int(rng.integers(len(pool)))
    d = pool[pick]
    k = h / 20
    size = (max(1, round(d.shape[1] * k)), max(1, round(d.shape[0] * k)))
    d = np.asarray(Image.fromarray(d).resize(size, Image.BILINEAR), np.float32) / 255
    rows, cols = np.flatnonzero(d.max(1) > 30 / 255), np.flatnonzero(d.max(0) > 30 / 255)
    d = d[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    rows, cols = np.flatnonzero(d.max(1) >= 0.5), np.flatnonzero(d.max(0) >= 0.5)
    margins = (int(cols[0]), d.shape[1] - 1 - int(cols[-1]), d.shape[0] - 1 - int(rows[-1]))
    return d, margins, pick


def _separator(kind: str, h: float, w: float, rng) -> tuple[list, float, float]:
    """Strokes drawing ``kind`` (each ``(shape, points, width)``, x from 0 and y up from
    the baseline, in px), how wide it is, and how far it reaches left of x = 0."""
    dot = w * rng.uniform(1.2, 1.8)
    if kind == "-":
        length = h * rng.uniform(0.3, 0.5)
        y = h * rng.uniform(0.4, 0.6)
        tilt = length * np.tan(np.radians(rng.uniform(-5, 5)))
        return [("line", [(0, y - tilt / 2), (length, y + tilt / 2)], w)], length, 0.0
    if kind in ".,":
        strokes = [("dot", (dot / 2, dot / 2 + h * rng.uniform(-0.03, 0.03)), dot)]
        if kind == ",":
            tail = (dot / 2 - h * rng.uniform(0.04, 0.1), -h * rng.uniform(0.2, 0.3))
            strokes.append(("line", [(dot * 0.7, dot / 2), tail], 0.8 * w))
            return strokes, dot, max(0.0, -tail[0])
        return strokes, dot, 0.0
    if kind == ":":
        upper = h * rng.uniform(0.5, 0.65)
        return [("dot", (dot / 2, dot / 2), dot), ("dot", (dot / 2, upper), dot)], dot, 0.0
    if kind == "/":
        tall = h * rng.uniform(1.0, 1.2)
        lean = tall * np.tan(np.radians(rng.uniform(40, 55)))
        bottom = -(tall - h) / 2  # centred on the row's middle
        return [("line", [(0, bottom), (lean, bottom + tall)], w)], lean, 0.0
    raise ValueError(f"no separator {kind!r}: one of {SEPARATORS!r}")


def make_row(
    text: str,
    pool: dict[str, np.ndarray],
    rng: np.random.Generator,
    height: int = 24,
    scale: tuple[float, float] = (2.0, 5.0),
    dark_on_light: bool | None = None,
    picked: list[tuple[str, int]] | None = None,
) -> tuple[Image.Image, str]:
    """``(image, text)``: ``text`` (digits, ``SEPARATORS`` and spaces) written with
    digits drawn from ``pool`` (``by_label``), digit height ``height`` px before the
    canvas is enlarged by a factor drawn from ``scale``. ``dark_on_light``: None for
    either, drawn at random. ``picked``: where given, each digit's ``(label, index in
    pool[label])`` is appended to it."""
    h, w = float(height), STROKE * height
    items: list[tuple[str, float, object]] = []  # (kind, x, digit array or strokes)
    x, pending = 0.5 * h, 0.0
    for c in text:
        if c == " ":
            pending += h * rng.uniform(0.8, 1.2)
            continue
        if items:
            x += pending + h * rng.uniform(0.2, 0.45)
        pending = 0.0
        if c.isdigit():
            d, (left, right, bottom), pick = _digit(pool[c], h * rng.uniform(0.9, 1.1), rng)
            if picked is not None:
                picked.append((c, pick))
            items.append(("digit", x - left, (d, bottom)))
            x += d.shape[1] - left - right
        else:
            strokes, width, left = _separator(c, h, w * rng.uniform(0.85, 1.15), rng)
            x += left
            items.append(("sep", x, strokes))
            x += width
    width, base = round(x + 0.5 * h), round(1.5 * h)  # base: the baseline's row
    canvas = np.zeros((round(2.2 * h), width), np.float32)
    pen = Image.new("L", (width * SUPER, canvas.shape[0] * SUPER), 0)
    draw = ImageDraw.Draw(pen)
    for kind, x0, thing in items:
        if kind == "digit":
            d, bottom = thing
            y0 = round(base + bottom - d.shape[0] + h * rng.uniform(-0.06, 0.06))
            x0 = max(0, round(x0))
            region = canvas[y0 : y0 + d.shape[0], x0 : x0 + d.shape[1]]
            np.maximum(region, d[:, : region.shape[1]], out=region)
            continue
        for shape, pts, pw in thing:
            s = SUPER
            if shape == "dot":
                cx, cy = (x0 + pts[0]) * s, (base - pts[1]) * s
                r = pw * s / 2
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
            else:
                xy = [((x0 + px) * s, (base - py) * s) for px, py in pts]
                draw.line(xy, fill=255, width=round(pw * s))
                for px, py in xy:  # round ends, as a pen makes
                    r = pw * s / 2
                    draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
    strokes = np.asarray(pen.reduce(SUPER), np.float32) / 255
    canvas = np.maximum(canvas, strokes[: canvas.shape[0], : canvas.shape[1]])
    img = Image.fromarray(np.round(canvas * 255).astype(np.uint8))
    k = rng.uniform(*scale)
    img = img.resize((round(img.width * k), round(img.height * k)), Image.BILINEAR)
    if dark_on_light is None:
        dark_on_light = bool(rng.random() < 0.5)
    if dark_on_light:
        img = Image.eval(img, lambda v: 255 - v)
    return img, text
