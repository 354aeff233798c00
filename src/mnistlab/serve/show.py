"""``predict --show``: pictures of what the model was given, drawn with Pillow alone.

Each image is shown beside the 28x28 the model saw (or, with ``--number``, with its
digits boxed: ``number_result.draw_number``), the answers written above, and the rows
stacked into one PNG. No matplotlib: the small install (no ``[train]``) draws them too.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["show_pairs", "stacked"]

SIDE = 168  # each picture's height in the sheet, px (the 28x28 at 6x)
TITLE = 16  # the band above each row for its titles, px
GAP = 12  # between the original and the digit, px


def _tile(pixels: np.ndarray | Image.Image, nearest: bool = False) -> Image.Image:
    """An image as RGB, ``SIDE`` px high, its width scaled alike (at most 3x ``SIDE``)."""
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.asarray(pixels))
    img = img.convert("RGB")
    width = max(1, min(3 * SIDE, round(img.width * SIDE / max(1, img.height))))
    return img.resize((width, SIDE), Image.NEAREST if nearest else Image.BILINEAR)


def show_pairs(originals: list, digits: list[np.ndarray], titles: list[str]) -> Image.Image:
    """Each original (an array or an image) beside its uint8 28x28 digit, one row each,
    titled "original" and ``titles[i]`` (the answer)."""
    rows = []
    for original, digit, title in zip(originals, digits, titles, strict=True):
        left, right = _tile(original), _tile(digit, nearest=True)
        row = Image.new("RGB", (left.width + GAP + right.width, TITLE + SIDE), "white")
        row.paste(left, (0, TITLE))
        row.paste(right, (left.width + GAP, TITLE))
        draw = ImageDraw.Draw(row)
        draw.text((2, 2), "original", fill="black")
        draw.text((left.width + GAP + 2, 2), title, fill="black")
        rows.append(row)
    return stacked(rows)


def stacked(images: list[Image.Image], gap: int = 8) -> Image.Image:
    """``images`` one under another on white, left-aligned, ``gap`` px apart."""
    width = max(im.width for im in images)
    height = sum(im.height for im in images) + gap * (len(images) - 1)
    sheet = Image.new("RGB", (width, height), "white")
    y = 0
    for im in images:
        sheet.paste(im, (0, y))
        y += im.height + gap
    return sheet
