"""Digits as people give them: images for the real-world evaluation (never for training).

A model scoring 99% on MNIST reads people's own digits much worse, because their
images are not MNIST's: other pens, canvases, paper, framing. This module makes
such images, as PIL images a user could have sent, for
``mnistlab.analysis.realworld`` to push through the same path as ``predict``
(``serve.preprocess.to_mnist``, then the model).

- ``uci``: the UCI optical digits shipped with scikit-learn (1,797 8x8 scans by
  other writers than MNIST's), as dark ink on white, upscaled to 64x64. Needs
  ``pip install 'mnistlab[realworld]'``. They come without writer ids, in the order
  of the original file (writer after writer); ``dev`` takes the first 900 and
  ``test`` the other 897, so that what is chosen on one is reported on the other.
- Synthetic sets, each made from MNIST digits by a seeded, deterministic recipe
  (``SETS``): ``thin-pen``, ``thick-marker``, ``off-centre``, ``rotated``,
  ``paper``, ``stretched``. The skeletons need scikit-image (same extra).

**Which MNIST digits (the rule).** ``split="dev"`` draws from the MNIST validation
digits (``load_data("mnist", val_size=5000, seed=0).val``, held out of training by
the default recipe): use it to choose between preprocessing or augmentation
variants. ``split="test"`` draws from the MNIST test digits: use it only to report
a choice already made. Never train on either.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ..errors import MnistlabError, UsageError

__all__ = ["SETS", "SPLITS", "ImageSet", "make_set", "realworld_sets", "split_digits", "uci_digits"]

SPLITS = ("dev", "test")
_EXTRA = "pip install 'mnistlab[realworld]'"


@dataclass
class ImageSet:
    name: str
    images: list[Image.Image]  # what a user would send
    labels: np.ndarray  # int64 (N,)
    index: np.ndarray | None = None  # the split's digit each image was made from (None: UCI)


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MnistlabError(f"the real-world sets need {module}: {_EXTRA}") from None


def split_digits(split: str = "test", data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST digits a split draws from: uint8 ``(N, 28, 28)`` and int64 labels.
    ``test`` needs only numpy; ``dev`` is MNIST's validation split, which torch's seeded
    permutation draws (``loader.hold_out``), so it needs torch."""
    from .datasets import load_arrays

    if split == "test":
        x, y = load_arrays("mnist", "test", data_dir)
        return x, y.astype(np.int64)
    if split != "dev":
        raise UsageError(f"must be dev or test, got {split!r}", option="split")
    try:
        from .loader import load_data
    except ImportError:
        raise UsageError(
            "dev is MNIST's validation split, drawn by torch's seeded permutation: "
            "pip install 'mnistlab[train]', or use --split test",
            option="split",
        ) from None
    x, y = load_data("mnist", data_dir, "cpu", val_size=5000, seed=0).val
    return x[:, 0].numpy(), y.numpy()


def _crop(digit: np.ndarray) -> np.ndarray:
    """The digit's ink box as float ink in [0, 1]."""
    ys, xs = np.nonzero(digit > 40)
    return digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255


def _scaled(digit: np.ndarray, h: int) -> np.ndarray:
    """The digit's ink box resized to ``h`` rows, aspect kept: float ink in [0, 1], with
    the blank border bicubic needs to fade out (a few pixels wider)."""
    crop = _crop(digit)
    s = h / crop.shape[0]
    crop = np.pad(crop, 2)
    size = (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s)))
    return np.clip(np.asarray(Image.fromarray(crop, "F").resize(size, Image.BICUBIC)), 0, 1)


SKELETON_ROWS = 120  # skeletons are found this high (Zhang's thinning grows as h^3), then drawn


def _skeleton(digit: np.ndarray) -> np.ndarray:
    """The digit's centre line, ``SKELETON_ROWS`` high (boolean, 1 px, 8-connected)."""
    morphology = _need("skimage.morphology")
    ink = ndimage.gaussian_filter(_scaled(digit, SKELETON_ROWS), 2) > 0.5  # smooth: fewer spurs
    return morphology.skeletonize(ink)


def _polyline(skeleton: np.ndarray, scale: float) -> np.ndarray:
    """The skeleton drawn ``scale`` times larger as a 1 px line (boolean): each pair of
    neighbouring pixels becomes a segment, as a mouse's pointer events would."""
    ys, xs = np.nonzero(skeleton)
    h, w = skeleton.shape
    img = Image.new("1", (int(w * scale) + 2, int(h * scale) + 2))
    draw = ImageDraw.Draw(img)
    on = np.pad(skeleton, 1)
    for y, x in zip(ys + 1, xs + 1, strict=True):
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            if not on[y + dy, x + dx]:
                continue
            if dy and dx and (on[y, x + dx] or on[y + dy, x]):
                continue  # a diagonal beside a corner path: skip it, or the line thickens
            a = ((x - 1) * scale, (y - 1) * scale)
            draw.line([a, ((x - 1 + dx) * scale, (y - 1 + dy) * scale)], fill=1)
    return np.asarray(img, dtype=bool)


def _place(ink: np.ndarray, size: tuple[int, int], rng, spread: float = 0.1) -> np.ndarray:
    """``ink`` (float [0, 1], cropped to its box) on an empty ``(H, W)`` canvas, near the
    centre; the canvas grows where the ink would not fit (a very wide digit)."""
    ink = _crop_box(ink)
    size = (max(size[0], ink.shape[0] + 8), max(size[1], ink.shape[1] + 8))
    canvas = np.zeros(size, dtype=np.float32)
    free_y, free_x = size[0] - ink.shape[0], size[1] - ink.shape[1]
    y = int(np.clip(free_y / 2 + rng.normal(0, spread) * size[0], 0, free_y))
    x = int(np.clip(free_x / 2 + rng.normal(0, spread) * size[1], 0, free_x))
    canvas[y : y + ink.shape[0], x : x + ink.shape[1]] = ink
    return canvas


def _paint(ink: np.ndarray, paper: float, pen: float) -> Image.Image:
    """Greyscale image: ``pen`` where ``ink`` is 1, ``paper`` where it is 0."""
    return Image.fromarray(np.uint8(np.round(paper + (pen - paper) * ink)), "L")


def _crop_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _fit(shape: tuple[int, int], size: tuple[int, int], fraction: float) -> float:
    """The scale at which ``shape`` fills ``fraction`` of ``size`` (its tighter side)."""
    return fraction * min(size[0] / shape[0], size[1] / shape[1])


def _thin_pen(digit, rng) -> Image.Image:
    # a mouse or stylus on a big web canvas: a 1-3 px line, no stroke-width variation
    size = (int(rng.integers(300, 601)), int(rng.integers(300, 601)))
    skeleton = _crop_box(_skeleton(digit))
    line = _polyline(skeleton, _fit(skeleton.shape, size, rng.uniform(0.45, 0.8)))
    width = int(rng.integers(1, 4))
    if width > 1:
        line = ndimage.binary_dilation(line, np.ones((width, width), bool))
    return _paint(_place(line.astype(np.float32), size, rng), 255, rng.uniform(0, 60))


def _thick_marker(digit, rng) -> Image.Image:
    # a felt marker or a fat brush: strokes 20-30% of the digit's height (MNIST: ~12%)
    side = int(rng.integers(200, 401))
    radius = SKELETON_ROWS * rng.uniform(0.10, 0.15)
    line = np.pad(_skeleton(digit), int(radius) + 2)
    ink = _crop_box(ndimage.distance_transform_edt(~line) <= radius).astype(np.float32)
    # drawn round at the skeleton's scale, then enlarged: smooth edges at any size
    scale = _fit(ink.shape, (side, side), rng.uniform(0.55, 0.8))
    size = (round(ink.shape[1] * scale), round(ink.shape[0] * scale))
    ink = np.asarray(Image.fromarray(ink, "F").resize(size, Image.BILINEAR)) > 0.5
    canvas = _place(ink.astype(np.float32), (side, side), rng, 0.03)
    if rng.random() < 0.5:  # chalk on a dark canvas as often as ink on white
        return _paint(canvas, rng.uniform(0, 40), 255)
    return _paint(canvas, 255, rng.uniform(0, 50))


def _off_centre(digit, rng) -> Image.Image:
    # a small digit in a corner of a big canvas or a photo of a whole page
    size = (int(rng.integers(400, 601)), int(rng.integers(400, 601)))
    ink = _scaled(digit, int(min(size) * rng.uniform(0.12, 0.25)))
    angle = rng.uniform(0, 2 * np.pi)
    r = rng.uniform(0.25, 0.4)  # the digit's centre, as a fraction of the canvas, from its centre
    cy = size[0] / 2 + r * size[0] * np.sin(angle) - ink.shape[0] / 2
    cx = size[1] / 2 + r * size[1] * np.cos(angle) - ink.shape[1] / 2
    y = int(np.clip(cy, 0, size[0] - ink.shape[0]))
    x = int(np.clip(cx, 0, size[1] - ink.shape[1]))
    canvas = np.zeros(size, dtype=np.float32)
    canvas[y : y + ink.shape[0], x : x + ink.shape[1]] = ink
    return _paint(canvas, 255, rng.uniform(0, 60))


def _rotated(digit, rng) -> Image.Image:
    # a tilted hand or a tilted camera: 10-25 degrees either way
    k = int(rng.integers(4, 9))
    big = Image.fromarray(np.pad(digit, 6), "L").resize((40 * k, 40 * k), Image.BICUBIC)
    angle = rng.uniform(10, 25) * rng.choice([-1, 1])
    big = big.rotate(angle, Image.BICUBIC, fillcolor=0)
    ink = np.asarray(big, dtype=np.float32) / 255
    if rng.random() < 0.5:
        return _paint(ink, 0, 255)  # white on black, like MNIST itself
    return _paint(ink, 255, rng.uniform(0, 60))


def _paper(digit, rng) -> Image.Image:
    # a phone photo of paper: grey, unevenly lit, tinted, noisy, JPEG-compressed
    size = (int(rng.integers(300, 501)), int(rng.integers(300, 501)))
    ink = _scaled(digit, int(min(size) * rng.uniform(0.4, 0.7)))
    ink = ndimage.gaussian_filter(ink, rng.uniform(0.5, 1.5))  # out of focus
    canvas = _place(ink, size, rng, 0.05)
    size = canvas.shape
    theta = rng.uniform(0, 2 * np.pi)
    ramp = (np.sin(theta) * np.linspace(-0.5, 0.5, size[0], dtype=np.float32))[:, None] + (
        np.cos(theta) * np.linspace(-0.5, 0.5, size[1], dtype=np.float32)
    )
    paper = rng.uniform(140, 215) + rng.uniform(30, 70) * ramp  # light falls off one way
    pen = rng.uniform(25, 90)
    noise = rng.standard_normal(size, dtype=np.float32) * rng.uniform(3, 10)
    grey = paper + (pen - paper) * canvas + noise
    tint = np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 0.97)], np.float32)
    rgb = np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8)  # warm light
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=int(rng.integers(35, 86)))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _stretched(digit, rng) -> Image.Image:
    # scans normalised so each digit fills its box (as in the NIST/UCI bitmaps), binarised
    side = int(rng.integers(24, 65))
    crop = _crop(digit)
    h, w = crop.shape
    # a 1 stretched edge to edge would be a solid block no one could read: widen it
    # at most twice as much as its height (and a flat digit heighten at most twice)
    tw, th = min(side, round(side * w / h * 2)), min(side, round(side * h / w * 2))
    ink = np.asarray(Image.fromarray(crop, "F").resize((tw, th), Image.BICUBIC)) > 0.5
    # the faint edge rows fall under the threshold: stretch what is left edge to edge
    ink = np.asarray(Image.fromarray(_crop_box(ink)).resize((tw, th), Image.NEAREST))
    canvas = np.zeros((side, side), dtype=np.float32)
    y, x = (side - th) // 2, (side - tw) // 2
    canvas[y : y + th, x : x + tw] = ink
    if rng.random() < 0.5:
        return _paint(canvas, 0, 255)
    return _paint(canvas, 255, 0)


# name -> (what it imitates, renderer(digit uint8 (28, 28), rng) -> PIL image)
SETS: dict[str, tuple[str, Callable]] = {
    "thin-pen": ("1-3 px line on a 300-600 px canvas", _thin_pen),
    "thick-marker": ("strokes 2x MNIST's, half white on dark", _thick_marker),
    "off-centre": ("small digit away from the centre of a big canvas", _off_centre),
    "rotated": ("tilted 10-25 degrees, both polarities", _rotated),
    "paper": ("photo: grey uneven paper, noise, JPEG", _paper),
    "stretched": ("binarised, stretched to fill its box", _stretched),
}


def make_set(
    name: str, digits: np.ndarray, labels: np.ndarray, n: int = 500, seed: int = 0
) -> ImageSet:
    """``n`` images of set ``name`` made from ``digits`` (uint8 ``(N, 28, 28)``)."""
    if name not in SETS:
        raise UsageError(f"unknown set {name!r}; choose from {', '.join(SETS)}", option="sets")
    if not 0 < n <= len(digits):
        raise UsageError(f"must be between 1 and {len(digits)}, got {n}", option="per_set")
    render = SETS[name][1]
    rng = np.random.default_rng([seed, list(SETS).index(name)])
    index = np.sort(rng.choice(len(digits), n, replace=False))
    images = [render(digits[i], rng) for i in index]
    return ImageSet(name, images, labels[index].astype(np.int64), index)


UCI_DEV = 900  # the first 900 UCI scans are the dev split's, the other 897 the test split's


def uci_digits(split: str = "all") -> ImageSet:
    """The UCI digits (scikit-learn) as a user would have them: dark on white, 64x64.
    ``split``: "all" (1,797), "dev" (the first ``UCI_DEV``) or "test" (the rest)."""
    datasets = _need("sklearn.datasets")
    bunch = datasets.load_digits()
    part = {"all": slice(None), "dev": slice(None, UCI_DEV), "test": slice(UCI_DEV, None)}
    if split not in part:
        raise UsageError(f"must be all, dev or test, got {split!r}", option="split")
    images = []
    for scan in bunch.images[part[split]]:  # (8, 8) floats 0..16, 16 = ink
        paper = np.uint8(np.round(255 - scan * (255 / 16)))
        # bilinear: each 8x8 value is the ink count of a 4x4 block of the original
        # 32x32 bitmap, so a smooth ramp is closer to it than nearest's hard squares
        # (whose edges Otsu would take as strokes); bicubic would overshoot
        images.append(Image.fromarray(paper, "L").resize((64, 64), Image.BILINEAR))
    return ImageSet("uci", images, bunch.target[part[split]].astype(np.int64))


def realworld_sets(
    split: str = "test",
    n: int = 500,
    seed: int = 0,
    data_dir=None,
    sets: list[str] | None = None,
    uci: bool | None = None,
) -> list[ImageSet]:
    """The synthetic sets (``n`` each, from ``split``'s digits), then ``split``'s UCI: always with
    ``uci=True``, never with ``False``, and where scikit-learn is installed with None."""
    digits, labels = split_digits(split, data_dir)
    out = [make_set(name, digits, labels, n, seed) for name in sets or SETS]
    if uci is None:
        try:
            import sklearn  # noqa: F401

            uci = True
        except ImportError:
            uci = False
    if uci:
        out.append(uci_digits(split))
    return out
