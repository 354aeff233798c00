"""Turn any picture of a digit into what an MNIST model expects.

MNIST digits are white ink on black, the ink fitted into a 20x20 box (aspect
kept, anti-aliased) and shifted so its centre of mass sits at the centre of the
28x28 image. Photos and drawings are rarely like that, which is why a model that
scores 99% on MNIST misreads people's own digits. ``to_mnist`` does, in order:

1. read with Pillow (any mode; EXIF orientation applied; a pixel-count limit);
2. grey levels in [0, 1], compositing transparency on the background the ink
   needs (dark ink on a transparent canvas goes onto white);
3. polarity from the image itself: the background is the border's median, and
   the ink is whichever side (darker or lighter) lies further from it;
4. flat-field: a large-scale background estimate is subtracted, so grey paper and
   uneven lighting do not become ink, and the contrast is stretched;
5. the ink mask by Otsu's threshold; small specks are dropped before cropping;
6. MNIST geometry: 20x20 box, aspect kept, centre of mass to (14, 14).

The CLI, the web app and the tests all use this one function.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from ..errors import MnistlabError

__all__ = ["MAX_PIXELS", "PreprocessError", "for_display", "load_digit", "open_image", "to_mnist"]

MAX_PIXELS = 4096 * 4096  # larger images are refused (decompression-bomb guard)
WORK_SIDE = 512  # images are reduced to at most this for the analysis steps
SPECK_FRACTION = 0.05  # components smaller than this share of the largest are noise


class PreprocessError(MnistlabError):
    """The image cannot be turned into a digit; the message says why."""


def open_image(source: str | os.PathLike | bytes, name: str | None = None) -> Image.Image:
    """Open and fully decode an image from a path or bytes, with EXIF orientation applied."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    data = source if isinstance(source, bytes) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data) if data is not None else source)
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise PreprocessError(
                    f"{label}: {w}x{h} is over the limit of {MAX_PIXELS:,} pixels; scale it down",
                    kind="too_large",
                )
            img.load()
    except FileNotFoundError:
        raise PreprocessError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise PreprocessError(f"{label}: is a folder, not an image") from None
    except UnidentifiedImageError:
        raise PreprocessError(f"{label}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreprocessError(
            f"{label}: too many pixels (decompression-bomb guard)", kind="too_large"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise PreprocessError(f"{label}: corrupt or truncated image ({e})") from None
    return ImageOps.exif_transpose(img)


def _grey(img: Image.Image) -> np.ndarray:
    """Grey levels in [0, 1] (float32, (H, W)), transparency composited as the ink needs."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        return np.clip(arr / top, 0, 1)
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
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


def _border(g: np.ndarray) -> np.ndarray:
    h, w = g.shape
    k = max(1, round(0.05 * min(h, w)))
    return np.concatenate([g[:k].ravel(), g[-k:].ravel(), g[:, :k].ravel(), g[:, -k:].ravel()])


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    omega = np.cumsum(p)
    mu = np.cumsum(p * (edges[:-1] + edges[1:]) / 2)
    between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
    return float(edges[int(np.argmax(between)) + 1])


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected labels of a small boolean mask (union-find over runs)."""
    h, w = mask.shape
    labels = np.zeros((h, w), dtype=np.int32)
    parent = [0]

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for y in range(h):
        for x in np.flatnonzero(mask[y]):
            near = [labels[y, x - 1]] if x > 0 else []
            if y > 0:
                near += list(labels[y - 1, max(0, x - 1) : x + 2])
            near = [n for n in near if n]
            if not near:
                parent.append(len(parent))
                labels[y, x] = len(parent) - 1
                continue
            root = min(find(n) for n in near)
            labels[y, x] = root
            for n in near:
                parent[find(n)] = root
    roots = np.array([find(i) for i in range(len(parent))], dtype=np.int32)
    _, dense = np.unique(roots, return_inverse=True)
    return dense[labels], int(dense.max())


def _ink_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (y0, y1, x0, x1) of the ink, ignoring specks."""
    h, w = mask.shape
    f = max(1, int(np.ceil(max(h, w) / 128)))  # label on a <=128 px grid: fast in Python
    small = mask[: h // f * f or h, : w // f * f or w]
    if f > 1:
        small = small.reshape(small.shape[0] // f, f, small.shape[1] // f, f).any(axis=(1, 3))
    labels, n = _components(small)
    if n == 0:
        return None
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    keep = np.flatnonzero(areas >= SPECK_FRACTION * areas.max()) + 1
    ys, xs = np.nonzero(np.isin(labels, keep))
    return ys.min() * f, min(h, (ys.max() + 1) * f), xs.min() * f, min(w, (xs.max() + 1) * f)


def to_mnist(img: Image.Image, name: str = "image") -> np.ndarray:
    """A uint8 (28, 28) MNIST-style digit (white on black, centred) from any image."""
    g = _grey(img)
    if max(g.shape) > WORK_SIDE:
        s = WORK_SIDE / max(g.shape)
        size = (max(1, round(g.shape[1] * s)), max(1, round(g.shape[0] * s)))
        g = np.asarray(Image.fromarray(g, "F").resize(size, Image.BOX), dtype=np.float32)
    border = _border(g)
    bg = float(np.median(border))
    lo, hi = np.percentile(g, [1, 99])
    if bg - lo > hi - bg:  # the ink is darker than the background: make it white on black
        g, border = 1.0 - g, 1.0 - border
    g = np.clip(g - _background(g, border), 0, None)
    # the ink's brightness: the brightest 3x3 neighbourhood, so one hot pixel is not it
    h, w = g.shape
    padded = np.pad(g, 1, mode="edge")
    top = float((sum(padded[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9).max())
    if top < 0.08:  # nothing stands out from the background
        raise PreprocessError(f"{name}: no ink found (the image is blank or has no contrast)")
    g = np.clip(g / top, 0, 1)
    t = _otsu(g)
    box = _ink_box(g > t)
    if box is None:
        raise PreprocessError(f"{name}: no ink found")
    y0, y1, x0, x1 = box
    # below half the threshold is paper texture; above it, keep the anti-aliased edge
    ink = np.clip((g[y0:y1, x0:x1] - t / 2) / (1 - t / 2), 0, 1)
    return _mnist_geometry(ink)


def _background(g: np.ndarray, border: np.ndarray) -> np.ndarray | float:
    """The background to subtract. Where the border is even (a drawing, a scan) it is
    one level; where it varies (a photo: grey paper, uneven light) it is a grey-level
    opening much wider than a stroke, which follows the light and removes the ink."""
    lo, mid, hi = np.percentile(border, [5, 50, 95])
    h, w = g.shape
    if hi - lo < 0.05 or max(h, w) <= 64:
        return float(mid)
    f = max(h, w) / 64
    small = Image.fromarray(g, "F").resize((max(1, round(w / f)), max(1, round(h / f))), Image.BOX)
    opened = small.filter(ImageFilter.MinFilter(15)).filter(ImageFilter.MaxFilter(15))
    return np.asarray(opened.resize((w, h), Image.BILINEAR), dtype=np.float32)


def _mnist_geometry(ink: np.ndarray) -> np.ndarray:
    """Fit ``ink`` into 20x20 keeping its aspect, then centre its mass in 28x28."""
    h, w = ink.shape
    s = 20.0 / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    # LANCZOS on float data anti-aliases like the original NIST -> MNIST reduction
    small = np.asarray(Image.fromarray(ink.astype(np.float32), "F").resize(size, Image.LANCZOS))
    small = np.clip(small, 0, 1)
    out = np.zeros((28, 28), dtype=np.float32)
    mass = small.sum()
    ys, xs = np.indices(small.shape)
    cy, cx = ((ys * small).sum() / mass, (xs * small).sum() / mass) if mass else (h / 2, w / 2)
    top = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
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
