"""Images that are not digits, made from scratch, to teach a model to say so.

A digit recogniser trained on digits alone calls everything a digit: a letter, a
scribble, a dash. Outlier exposure (Hendrycks, Mazeika & Dietterich, 2019) shows it
non-digits in training too, with the target "no class more than another". This
module makes them, MNIST-style (white on black, the ink's longer side 20 px, centred
by its centre of mass in 28x28), from two sources:

- **glyphs**: letters of the Latin, Greek, Cyrillic, Armenian, Georgian, Hebrew and
  Arabic scripts and symbols (``# @ & ? + = % ...``), rendered from the fonts that
  matplotlib ships (DejaVu, STIX, Computer Modern: the same on every machine that
  has mnistlab), regular and bold. Characters a person could read as a digit
  (``O o Q G l I i | S s Z z B b g q ( ) [ ] !``, Greek theta and beta, Cyrillic
  Ze, Che and E, Hebrew vav and resh, Arabic alef, waw and heh, many round Georgian
  letters ...) are left out: teaching the model that an ``O`` is no
  digit would teach it to doubt the 0s.
- **shapes**: what people draw on a canvas that is no digit: polygons, stars,
  crosses, arrows, hearts, houses, grids, hatching, zigzags, waves, spirals,
  scribbles, random strokes, filled blobs, noise. No plain circle or ellipse (a 0)
  and no single straight stroke (a 1).

``outlier_images(split)`` gives uint8 ``(N, 28, 28)``: ``train`` from one set of
fonts and seeds, ``val`` from other fonts (DejaVu Sans Mono, Computer Modern's
italic, typewriter and math italic) and other seeds, so that a threshold chosen on
``val`` is chosen on fonts the model never saw. Both sets ship with the package as
made here (``outlier_sets/``), so that a training does not spend its first seconds
drawing them; ``render_set`` makes them again. The training loop distorts the
training outliers with the recipe's handwriting augmentations, batch by batch, as
it does the digits.
"""

from __future__ import annotations

import functools
import hashlib
import io
import lzma
import math
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

__all__ = [
    "DRY_RUN_OUTLIERS",
    "GLYPHS",
    "SHAPES",
    "outlier_images",
    "outlier_kinds",
    "render_glyph",
    "render_set",
    "to_mnist_frame",
]

# what a person would never call a digit; lookalikes of digits left out (see above)
LATIN = "ACDEFHJKLMNPRTUVWXYacdefhjkmnprtuvwxy"
GREEK = "ΓΔΛΞΠΣΦΨΩαγεζηκλμξπρτφχψω"
CYRILLIC = "ГДЖИЙКЛПФЦШЩЪЫЮЯгджиклмнпфцшщъыюя"
ARMENIAN = "ԱԲԴԵԷԸԹԺԻԼԽԾԿՀՂՃՄՆՇՈՉՊՌՍՎՏՐՒՓՔՖ"
GEORGIAN = "დთკლმნპჟრტფქღყშჩწჭჯ"
HEBREW = "אבגהחטכלמנעפצקשת"
ARABIC = "بتثجحخدذسشصضطظعغفكني"
SYMBOLS = "#@&?+=%$*<>{}~^-_÷×±≠≈∞√∑∇←↑→↓↔★☆♠♣♥♦✓✗¶€£¥µ∆"
GLYPHS = LATIN + GREEK + CYRILLIC + ARMENIAN + GEORGIAN + HEBREW + ARABIC + SYMBOLS

TRAIN_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmb10.ttf",
)
VAL_FONTS = (
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "cmti10.ttf",
    "cmtt10.ttf",
    "cmmi10.ttf",
)
SIZES = {"train": 20_000, "val": 5_000}
# A dry run's outliers, train and val: the first 512 of each set. Its two batches need
# a few dozen (and where the sets must be rendered, all 20,000 would take most of its time).
DRY_RUN_OUTLIERS = 512
SEEDS = {"train": 1, "val": 2}
GLYPH_SHARE = 0.6  # the rest are shapes
RENDER = 64  # glyphs and shapes are drawn this big, then reduced to the 20 px box


def _font_dir() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


@functools.cache
def _font(name: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(os.path.join(_font_dir(), name), RENDER)


@functools.cache
def _covered(name: str) -> str:
    """The characters of ``GLYPHS`` that font ``name`` has (a missing one would render
    as the font's empty box)."""
    from matplotlib import ft2font

    if name.startswith("cm"):  # TeX's own encodings: Latin letters only are where expected
        return LATIN
    face = ft2font.FT2Font(os.path.join(_font_dir(), name))
    return "".join(c for c in GLYPHS if face.get_char_index(ord(c)))


def to_mnist_frame(ink: np.ndarray) -> np.ndarray | None:
    """Float ink in [0, 1], any size, as MNIST frames a digit: the ink's box scaled so
    its longer side is 20 px, centred by its centre of mass in 28x28; uint8. None
    when there is no ink."""
    ys, xs = np.nonzero(ink > 0.05)
    if len(ys) == 0:
        return None
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
    h, w = crop.shape
    s = 20 / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = np.clip(np.asarray(Image.fromarray(crop, "F").resize(size, Image.BOX)), 0, 1)
    cy, cx = ndimage.center_of_mass(small)
    # the shift that puts the centre of mass at (14, 14), kept inside the frame
    top = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
    out = np.zeros((28, 28), np.float32)
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return np.uint8(np.round(out * 255))


def render_glyph(char: str, font: str) -> np.ndarray:
    """``char`` in ``font`` (a file among matplotlib's fonts) as float ink, ``RENDER`` px."""
    img = Image.new("L", (2 * RENDER, 2 * RENDER))
    ImageDraw.Draw(img).text((RENDER // 2, RENDER // 4), char, fill=255, font=_font(font))
    return np.asarray(img, np.float32) / 255


@functools.cache
def _glyph_frame(char: str, font: str) -> np.ndarray | None:
    """``render_glyph`` framed as MNIST: the same for every draw of the pair, so each of
    the ~3,600 pairs is rendered once, not once per draw (12,000 glyphs for ``train``)."""
    return to_mnist_frame(render_glyph(char, font))


def _points(rng, n: int, spread: float = 0.8) -> list[tuple[float, float]]:
    c, r = RENDER / 2, RENDER / 2 * spread
    return [(c + r * rng.uniform(-1, 1), c + r * rng.uniform(-1, 1)) for _ in range(n)]


def _polygon(rng, sides: int, star: bool = False) -> list[tuple[float, float]]:
    c, r, turn = RENDER / 2, RENDER * 0.4, rng.uniform(0, 2 * math.pi)
    stretch = rng.uniform(0.6, 1.0)  # rectangles and squat triangles too
    pts = []
    for k in range(sides * (2 if star else 1)):
        rk = r * (0.45 if star and k % 2 else 1.0)
        a = turn + 2 * math.pi * k / (sides * (2 if star else 1))
        pts.append((c + rk * math.cos(a), c + rk * math.sin(a) * stretch))
    return [*pts, pts[0]]


def _shape(kind: str, rng, draw: ImageDraw.ImageDraw, width: int) -> None:
    c, r = RENDER / 2, RENDER * 0.4
    line = functools.partial(draw.line, fill=255, width=width, joint="curve")
    if kind == "polygon":
        line(_polygon(rng, int(rng.integers(3, 7))))
    elif kind == "star":
        line(_polygon(rng, int(rng.integers(4, 7)), star=True))
    elif kind == "cross":  # x, +, or an asterisk
        n, a = int(rng.integers(2, 5)), rng.uniform(0, math.pi)
        for _ in range(n):
            dx, dy = r * math.cos(a), r * math.sin(a)
            line([(c - dx, c - dy), (c + dx, c + dy)])
            a += math.pi / n + rng.normal(0, 0.1)
    elif kind == "grid":  # a hash, a grid, hatching
        n, a = int(rng.integers(2, 5)), rng.uniform(-0.4, 0.4)
        for k in range(n):
            o = -r + 2 * r * (k + 0.5) / n
            line([(c + o - r * a, c - r), (c + o + r * a, c + r)])
            if rng.random() < 0.7:
                line([(c - r, c + o + r * a), (c + r, c + o - r * a)])
    elif kind == "zigzag":
        n, amp = int(rng.integers(3, 8)), r * rng.uniform(0.3, 0.9)
        line([(c - r + 2 * r * k / n, c + amp * (-1) ** k) for k in range(n + 1)])
    elif kind == "wave":
        f, amp = rng.uniform(1.5, 4), r * rng.uniform(0.2, 0.6)
        line(
            [(c - r + 2 * r * t / 40, c + amp * math.sin(f * math.pi * t / 20)) for t in range(41)]
        )
    elif kind == "spiral":
        turns = rng.uniform(1.5, 3.5)
        pts = [(t / 60) * turns * 2 * math.pi for t in range(61)]
        line([(c + r * t / pts[-1] * math.cos(t), c + r * t / pts[-1] * math.sin(t)) for t in pts])
    elif kind == "scribble":  # a random walk with momentum, many turns
        p, v, pts = np.array([c, c]), rng.normal(0, 4, 2), []
        for _ in range(int(rng.integers(20, 60))):
            v = 0.7 * v + rng.normal(0, 4, 2)
            p = np.clip(p + v, 4, RENDER - 4)
            pts.append(tuple(p))
        line(pts)
    elif kind == "strokes":  # a polyline of 4-7 random points
        line(_points(rng, int(rng.integers(4, 8))))
    elif kind == "clutter":  # several short strokes apart
        for _ in range(int(rng.integers(3, 7))):
            line(_points(rng, 2, 0.9))
    elif kind == "arrow":
        a = rng.uniform(0, 2 * math.pi)
        tip, tail = (
            (c + r * math.cos(a), c + r * math.sin(a)),
            (c - r * math.cos(a), c - r * math.sin(a)),
        )
        line([tail, tip])
        for side in (-1, 1):
            b = a + math.pi - side * 0.5
            line([tip, (tip[0] + 0.4 * r * math.cos(b), tip[1] + 0.4 * r * math.sin(b))])
    elif kind == "heart":
        t = np.linspace(0, 2 * math.pi, 50)
        x, y = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t)
        line(list(zip(c + x * r / 17, c - y * r / 17, strict=True)))
    elif kind == "house":
        s = r * 0.8
        line(
            [
                (c - s, c),
                (c - s, c + s),
                (c + s, c + s),
                (c + s, c),
                (c - s, c),
                (c, c - s),
                (c + s, c),
            ]
        )
    elif kind == "blob":  # a filled blob: what a child's or a cat's canvas holds
        draw.polygon(_points(rng, int(rng.integers(5, 10)), 0.7), fill=255)
    elif kind == "face":
        draw.ellipse((c - r, c - r, c + r, c + r), outline=255, width=width)
        for ex in (-0.35, 0.35):
            draw.ellipse(
                (c + ex * r - 3, c - 0.3 * r - 3, c + ex * r + 3, c - 0.3 * r + 3), fill=255
            )
        line([(c - 0.4 * r, c + 0.3 * r), (c, c + 0.5 * r), (c + 0.4 * r, c + 0.3 * r)])
    elif kind == "noise":  # blotches of noise
        noise = ndimage.gaussian_filter(rng.random((RENDER, RENDER)), rng.uniform(1, 4))
        draw.bitmap(
            (0, 0), Image.fromarray(np.uint8(noise > np.quantile(noise, 0.75)) * 255), fill=255
        )


SHAPES = (
    "polygon",
    "star",
    "cross",
    "grid",
    "zigzag",
    "wave",
    "spiral",
    "scribble",
    "strokes",
    "clutter",
    "arrow",
    "heart",
    "house",
    "blob",
    "face",
    "noise",
)


def render_shape(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A ``kind`` of ``SHAPES`` drawn with a pen of random width, turned and stretched at
    random, as float ink."""
    img = Image.new("L", (RENDER, RENDER))
    _shape(kind, rng, ImageDraw.Draw(img), int(rng.integers(3, 9)))
    # turned and stretched at random: no two hearts or houses alike
    img = img.rotate(rng.uniform(-30, 30), Image.BILINEAR, expand=True)
    img = img.resize((max(1, round(img.width * rng.uniform(0.7, 1.3))), img.height), Image.BILINEAR)
    return np.asarray(img, np.float32) / 255


# The two sets as made here, shipped with the package (``python -m mnistlab.data.outliers``
# writes them; tests/data/test_outliers.py makes them again and compares): rendering
# them takes about 13 s of a training's start on a 2-core CPU, loading them 0.05-0.2 s.
SHIPPED = Path(__file__).with_name("outlier_sets")


@functools.lru_cache(maxsize=4)
def outlier_images(split: str = "train", count: int | None = None) -> np.ndarray:
    """The ``split`` (``train`` or ``val``) outliers: uint8 ``(N, 28, 28)``, the same on
    every machine (seeded; fonts from matplotlib; shipped as made). Kept after the first call.

    ``count``: only the first ``count`` of them (the same images, in the same order)."""
    return _made(split, count)[0]


@functools.lru_cache(maxsize=2)
def outlier_kinds(split: str = "train") -> np.ndarray:
    """``(N,)`` strings, ``"glyph"`` or ``"shape"``: what each of ``outlier_images(split)``
    is. Kept after the first call."""
    return _made(split)[1]


def _made(split: str, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    n = min(SIZES[split], count or SIZES[split])
    shipped = _shipped(split)
    if shipped is None:  # missing, damaged, or made from other values: draw it
        return render_set(split, n)
    images, kinds = shipped
    return images[:n].copy(), kinds[:n]


def fingerprint() -> str:
    """What the sets are made from, fonts and drawing code aside: a shipped set made from
    other values is not used (the test that makes them again catches the rest)."""
    parts = [GLYPHS, *TRAIN_FONTS, *VAL_FONTS, *SHAPES, *map(repr, (SIZES, SEEDS, GLYPH_SHARE))]
    return hashlib.sha256("\n".join([*parts, repr(RENDER)]).encode()).hexdigest()[:16]


def _shipped(split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(images, kinds) of the shipped ``split``, or None if it is missing, damaged or
    was made from other values."""
    try:
        with lzma.open(SHIPPED / f"{split}.npz.xz") as f:
            z = np.load(io.BytesIO(f.read()), allow_pickle=False)
        images, glyph, made_from = z["images"], z["glyph"], str(z["fingerprint"])
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile, ValueError, KeyError):
        return None  # missing or damaged: drawn again
    size = SIZES[split]
    if made_from != fingerprint() or images.shape != (size, 28, 28) or glyph.shape != (size,):
        return None
    if images.dtype != np.uint8 or glyph.dtype != bool:
        return None
    return images, np.where(glyph, "glyph", "shape")


def write_sets(folder: Path = SHIPPED) -> list[Path]:
    """Render both sets and write them as ``folder/<split>.npz.xz`` (what ships)."""
    from .._io import atomic_write_bytes

    paths = []
    for split in SIZES:
        images, kinds = render_set(split)
        buf = io.BytesIO()
        np.savez(buf, images=images, glyph=kinds == "glyph", fingerprint=np.str_(fingerprint()))
        data = lzma.compress(buf.getvalue(), preset=9)
        paths.append(atomic_write_bytes(Path(folder) / f"{split}.npz.xz", data))
    return paths


def render_set(split: str, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Make the ``split`` set (or its first ``count``) from scratch: (images, kinds)."""
    rng = np.random.default_rng(SEEDS[split])
    fonts = TRAIN_FONTS if split == "train" else VAL_FONTS
    out, kinds = [], []
    while len(out) < min(SIZES[split], count or SIZES[split]):
        if rng.random() < GLYPH_SHARE:
            font = fonts[rng.integers(len(fonts))]
            chars = _covered(font)
            frame, kind = _glyph_frame(chars[rng.integers(len(chars))], font), "glyph"
        else:
            ink, kind = render_shape(SHAPES[rng.integers(len(SHAPES))], rng), "shape"
            frame = to_mnist_frame(ink)
        if frame is not None:
            out.append(frame)
            kinds.append(kind)
    return np.stack(out), np.array(kinds)


if __name__ == "__main__":  # python -m mnistlab.data.outliers: make the shipped sets again
    for path in write_sets():
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
