"""Turn any picture of a digit into what an MNIST model expects.

MNIST digits are white ink on black, the ink fitted into a 20x20 box (aspect
kept, anti-aliased) and shifted so its centre of mass sits at the centre of the
28x28 image. Photos and drawings are rarely like that, which is why a model that
scores 99% on MNIST misreads people's own digits. ``to_mnist`` does, in order:

1. read with Pillow (any mode; EXIF orientation applied; a pixel-count limit);
2. grey levels, compositing transparency on the background the ink needs (dark
   ink on a transparent canvas goes onto white); an image of two levels only (a
   binary scan, even one stored as levels 0 and 1) is spread to full contrast;
3. *find the ink* on the image reduced to at most ``FIND_SIDE``: the polarity (the
   background is the border's median; the ink is whichever side, darker or
   lighter, lies further from it, judged by the extremes two neighbouring pixels
   share, so a digit covering 1% of a page counts), a background to subtract (one
   level, or where the border is uneven, a grey-level opening that follows the
   light), how strong the ink is and whether it stands out from the paper's
   noise, Otsu's threshold, and the ink's box with small specks ignored (the
   polarity and the paper where a digit fills its frame: ``ink``);
4. *cut the crop* from the full image again, at most ``RENDER_SIDE`` (4x MNIST's
   20 px box) big, normalised the same way (half ink stays where it is, so strokes
   keep their width), and stretch it so its strongest strokes are full ink (a
   faint pen becomes black);
5. there, bring strokes far outside MNIST's width into range (``strokes``), and
   soften a binary image's edges so they are anti-aliased like MNIST's;
6. MNIST geometry: 20x20 box, aspect kept, centre of mass to (14, 14).

A bold digit filling its frame edge to edge (a scan normalised to its box, a digit
cropped to its ink) has its strokes on the border: there the corners give the polarity
and the paper is the border less the ink (``ink._paper``), so such a digit is read,
not called blank. The image operations
are scipy.ndimage's: one library, already a dependency, with the labels (8-connected
components), distance transform and grey-level morphology this needs, in C
(scikit-image would do but stays an optional extra); Pillow resamples. Finding the
ink on at most 128x128 and working on at most 80x80 keeps this to about 1 ms up to
512x512 (``mnistlab bench --only preprocess``; before, 7-30 ms). The CLI, the web app
and the tests all use this one function.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image
from scipy import ndimage

from .decode import MAX_PIXELS, PreprocessError, no_ink, open_image
from .ink import NOISE_FACTOR, _border, _brightest, _dark_ink, _paper, _quantile, paper_level
from .strokes import CORRECT_SIDE, fit_strokes, full_ink

__all__ = [
    "MAX_PIXELS",
    "PreprocessError",
    "for_display",
    "load_digit",
    "no_ink",
    "open_image",
    "paper_level",
    "to_mnist",
]

FIND_SIDE = 128  # the ink is found on the image reduced to at most this
RENDER_SIDE = CORRECT_SIDE  # the crop is cut at most this big: 4x the 20 px box
SPECK_FRACTION = 0.05  # components smaller than this share of the largest are noise
MIN_CONTRAST = 0.08  # the ink must stand out from the paper by this (of full scale)
BINARY_BLUR = 0.5  # a binary image's edges are blurred by this (Gaussian sigma, 28x28 px)
LIGHT_GRID = (32, 8)  # a photo's light: an opening 8 wide on the image reduced to 32
EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity: diagonal neighbours touch


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info


def _grey(img: Image.Image) -> np.ndarray:
    """Grey levels in [0, 1] (float32, (H, W)), transparency composited as the ink needs."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        return np.clip(arr / _full_scale(img.mode, float(arr.max())), 0, 1)
    has_alpha = _has_alpha(img)
    img = img.convert("RGBA" if has_alpha else "L")
    if not has_alpha:
        return np.asarray(img, dtype=np.float32) / 255.0
    rgba = np.asarray(img, dtype=np.float32) / 255.0
    lum = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    alpha = rgba[..., 3]
    if alpha.min() > 0.98:  # opaque after all
        return lum
    # the ink is what is opaque; put it on the background that contrasts with it
    ink_lum = float((lum * alpha).sum() / max(alpha.sum(), 1e-6))
    background = 1.0 if ink_lum < 0.5 else 0.0
    return lum * alpha + background * (1 - alpha)


def _full_scale(mode: str, top: float) -> float:
    """White for a 16-bit image: 255 where no value is above it (8-bit data in a 16-bit
    file, as many tools write it, reads as the 8-bit image), else 65535. A 32-bit
    integer or float image has no depth to go by: its brightest value (at least 1)."""
    if mode.startswith("I;16"):
        return 255.0 if top <= 255 else 65535.0
    return max(top, 1.0)


def _opaque(img: Image.Image) -> bool:
    """Whether an RGBA or LA image is opaque, judged on at most 128x128 of its pixels
    (nearest, so no averaging hides a transparent one): a transparent canvas is
    transparent all round its drawing, and a full count would cost a third of
    ``to_mnist``'s time at 512x512."""
    w, h = img.size
    sample = (
        img
        if max(w, h) <= FIND_SIDE
        else img.resize((min(w, FIND_SIDE), min(h, FIND_SIDE)), Image.NEAREST)
    )
    return int(np.asarray(sample.getchannel("A")).min()) >= 250


def _source(img: Image.Image, name: str = "image") -> tuple[Image.Image, float, bool]:
    """The picture as one grey image at full size, "L" (full scale 255) or "F" (full
    scale 1), and whether it had two levels only (spread to 0 and full scale)."""
    if img.mode == "F" and not np.isfinite(np.asarray(img)).all():  # read_number starts here too
        raise PreprocessError(
            f"{name}: has NaN or infinite pixel values; save it with finite ones", kind="corrupt"
        )
    if img.mode in ("RGBA", "LA") and _opaque(img):
        img = img.convert("L")  # opaque after all (a canvas saved as RGBA)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F") or _has_alpha(img):
        g = _grey(img)
        lo, hi = float(g.min()), float(g.max())
        binary = hi > lo and not ((g != lo) & (g != hi)).any()
        if binary:
            g = (g == hi).astype(np.float32)
        return Image.fromarray(g, "F"), 1.0, binary
    src = img if img.mode == "L" else img.convert("L")
    # every 8th pixel (nearest: no averaging makes up levels): most images show three
    # levels there already, with no count over the whole image
    w, h = src.size
    sample = np.asarray(src.resize((-(-w // 8), -(-h // 8)), Image.NEAREST))
    if np.count_nonzero(np.bincount(sample.ravel(), minlength=256)) > 2:
        return src, 255.0, False
    levels = np.flatnonzero(src.histogram())
    if len(levels) != 2:
        return src, 255.0, False
    if levels[1] - levels[0] < 255:
        src = src.point([0] * int(levels[1]) + [255] * (256 - int(levels[1])))
    return src, 255.0, True


def _levels(im: Image.Image, unit: float, dark: bool) -> np.ndarray:
    """Float32 levels in [0, 1] of ``im``, inverted when the ink is dark (exactly, for "L")."""
    a = np.asarray(im)
    if dark:
        a = 255 - a if unit == 255 else 1 - a
    return a.astype(np.float32) / np.float32(unit)


_EDGES = np.linspace(0.0, 1.0, 257)  # Otsu's 256 bins over [0, 1]
_CENTRES = (_EDGES[:-1] + _EDGES[1:]) / 2


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in [0, 1] over 256 bins: the upper edge of the best
    split's lower bin, so that ``values > t`` is the upper class."""
    v = np.asarray(values).ravel()
    if v.size and (v.min() < 0 or v.max() > 1):
        v = v[(v >= 0) & (v <= 1)]
    # v * 256 is exact (a power of two), so this bins exactly as np.histogram would
    hist = np.bincount(np.minimum((v * 256).astype(np.intp), 255), minlength=256)
    p = hist / max(hist.sum(), 1)
    omega = np.cumsum(p)
    mu = np.cumsum(p * _CENTRES)
    between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
    return float(_EDGES[int(np.argmax(between)) + 1])


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected labels of a boolean mask (1..n, 0 for the background) and n."""
    return ndimage.label(mask, structure=EIGHT)


def _ink_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (y0, y1, x0, x1) of the ink, ignoring specks. Above 64 px the mask
    is labelled in 2x2 blocks: faster, and pieces a pixel apart (a faint diagonal
    line broken up by the reduction) are one."""
    h, w = mask.shape
    p = 2 if max(h, w) > 64 else 1
    if p > 1:
        m = np.zeros((h + h % 2, w + w % 2), dtype=bool)
        m[:h, :w] = mask
        mask = m[0::2, 0::2] | m[1::2, 0::2] | m[0::2, 1::2] | m[1::2, 1::2]
    labels, n = _components(mask)
    if n == 0:
        return None
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    areas[0] = 0
    kept = (areas >= SPECK_FRACTION * areas.max())[labels]
    rows, cols = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
    return rows[0] * p, min(h, (rows[-1] + 1) * p), cols[0] * p, min(w, (cols[-1] + 1) * p)


def _trim(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return ink
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _background(g: np.ndarray, border: np.ndarray) -> float | Image.Image:
    """The background to subtract (``border``: the border's levels, sorted). Where the
    border is even (a drawing, a scan) one level; where it varies (a photo: grey paper,
    uneven light) a grey-level opening much wider than a stroke, which follows the
    light and removes the ink, as a small image covering ``g``."""
    lo, mid = _quantile(border, 0.05), _quantile(border, 0.5)
    h, w = g.shape
    # judged below the median only: ink on the border (a digit filling its frame) is above
    if mid - lo < 0.025 or max(h, w) <= 64:  # the image's median where ink fills the border
        return mid if mid - lo < 0.025 else min(mid, float(np.median(g)))
    side, size = LIGHT_GRID
    f = max(h, w) / side
    small = Image.fromarray(g, "F").resize((max(1, round(w / f)), max(1, round(h / f))), Image.BOX)
    opened = ndimage.maximum_filter(ndimage.minimum_filter(np.asarray(small), size), size)
    return Image.fromarray(opened, "F")  # the grey-level opening, as two flat filters


def _light_at(light: float | Image.Image, size, box, full) -> float | np.ndarray:
    """``light`` over ``box`` (x0, y0, x1, y1) of a ``full`` (w, h) image, at ``size``."""
    if isinstance(light, float):
        return light
    sx, sy = light.width / full[0], light.height / full[1]
    b = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    return np.asarray(light.resize(size, Image.BILINEAR, box=b), dtype=np.float32)


def _stands_out(g: np.ndarray, size) -> tuple[float | Image.Image, np.ndarray, float] | None:
    """The background (see ``_background``), ``g`` (levels, the ink bright) less it, and the
    ink's strength; None where nothing stands out from the paper and its noise."""
    filled = _paper(g)
    if filled:  # a digit filling its frame: the paper's level, its noise
        light, noise = filled
        r = g - light
    else:
        border = np.sort(_border(g))
        light = _background(g, border)
        r = g - _light_at(light, size, (0, 0, *size), size)
        # the paper's noise, from the side of the border's median that has no ink
        rb = border - light if isinstance(light, float) else np.sort(_border(r))
        noise = _quantile(rb, 0.5) - _quantile(rb, 0.16)
    top = _brightest(r)
    return (light, r, top) if top >= max(MIN_CONTRAST, NOISE_FACTOR * noise) else None


def to_mnist(img: Image.Image, name: str = "image") -> np.ndarray:
    """A uint8 (28, 28) MNIST-style digit (white on black, centred) from any image."""
    src, unit, binary = _source(img, name)
    f = -(-max(src.size) // FIND_SIDE)  # find the ink on a reduction by f (1: none)
    small = src.reduce(f) if f > 1 else src
    g = _levels(small, unit, False)
    dark = _dark_ink(g)
    found = _stands_out(_levels(small, unit, True) if dark else g, small.size)
    if found is None:
        raise no_ink(img, name, "the image is blank or has no contrast")
    light, r, top = found
    g = np.clip(r / top, 0, 1)
    t = _otsu(g)
    box = _ink_box(g > t)
    if box is None:
        raise no_ink(img, name)
    ink, reduced = _crop(src, unit, dark, light, top, t, box, f, small.size)
    ink = full_ink(ink)
    fitted, _ = fit_strokes(ink)
    if fitted is not ink:
        ink = _trim(fitted)
    elif binary and not reduced and max(ink.shape) < 40:
        # reduced less than 2x to 20x20, the edges stay hard: soften them as NIST's were
        ink = ndimage.gaussian_filter(ink, BINARY_BLUR * max(ink.shape) / 20, mode="constant")
    return _mnist_geometry(ink)


def _crop(src, unit, dark, light, top, t, box, f, small_size) -> tuple[np.ndarray, bool]:
    """The ink inside ``box`` (found on the reduction by ``f``), cut from the full image
    at most ``RENDER_SIDE`` big, as ink in [0, 1]; and whether it was reduced."""
    y0, y1, x0, x1 = box
    m = 1 if f > 1 else 0  # one pixel more on every side: the reduction blurred the edges
    full = (small_size[0] * f, small_size[1] * f)
    b = (max(0, (x0 - m) * f), max(0, (y0 - m) * f))
    b = (*b, min(src.width, (x1 + m) * f), min(src.height, (y1 + m) * f))
    k = RENDER_SIDE / (max(y1 - y0, x1 - x0) * f)
    if k >= 1:
        crop, k = src.crop(b), 1.0
    else:
        size = (max(1, round((b[2] - b[0]) * k)), max(1, round((b[3] - b[1]) * k)))
        crop = src.resize(size, Image.BOX, box=b)
    c = _levels(crop, unit, dark) - _light_at(light, crop.size, b, full)
    # scaled by the ink's strength as the reduced image was; then below half the threshold
    # is paper texture, and from there to as far below full ink the edge ramps up: a map
    # that keeps half ink where it was, so the stroke keeps its width (one affine map)
    span = max(1 - t, 0.05)
    c *= 1 / (top * span)
    c -= (t / 2) / span
    return _trim(np.clip(c, 0, 1, out=c)), k < 1


def _mnist_geometry(ink: np.ndarray) -> np.ndarray:
    """Fit ``ink`` into 20x20 keeping its aspect, then centre its mass in 28x28."""
    h, w = ink.shape
    s = 20.0 / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    # LANCZOS on float data anti-aliases like the original NIST -> MNIST reduction
    small = np.asarray(Image.fromarray(ink.astype(np.float32), "F").resize(size, Image.LANCZOS))
    small = np.clip(small, 0, 1)
    out = np.zeros((28, 28), dtype=np.float32)
    rows, cols = small.sum(axis=1, dtype=np.float64), small.sum(axis=0, dtype=np.float64)
    mass = rows.sum()
    if mass:
        cy, cx = rows @ np.arange(len(rows)) / mass, cols @ np.arange(len(cols)) / mass
    else:
        cy, cx = h / 2, w / 2
    top = min(max(round(14 - cy), 0), 28 - small.shape[0])
    left = min(max(round(14 - cx), 0), 28 - small.shape[1])
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return np.round(out * 255).astype(np.uint8)


def for_display(img: Image.Image) -> Image.Image:
    """RGB for showing a person the original: transparency shown on white."""
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        return Image.fromarray(np.uint8(_grey(img) * 255))
    return img.convert("RGB")


def load_digit(source: str | os.PathLike | bytes, name: str | None = None) -> np.ndarray:
    """``to_mnist(open_image(source))``: a (28, 28) uint8 digit from a file or bytes."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    return to_mnist(open_image(source, label), label)
