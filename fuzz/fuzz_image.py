"""Fuzz preprocessing from bytes: ``open_image`` then ``to_mnist``, and ``read_number``.

    python fuzz/fuzz_image.py -max_total_time=60    # libFuzzer flags; see docs/reliability.md

What the web app and ``mnistlab predict`` do with an upload, minus the model: decode
with Pillow (every format it reads), then turn the picture into a 28x28 digit, and
segment it as a row of digits. ``read_number`` asks a classifier where to cut digits
that touch; a stand-in computed from the pixels takes the model's place, so any cut
can be chosen. The seeds are one small digit saved in many formats and modes, so that
mutations reach each decoder and each colour-mode branch of the preprocessing.

Pillow's pure-Python format plugins (the header parsers) are instrumented with
mnistlab; the codecs themselves are C and give libFuzzer no coverage.
"""

from __future__ import annotations

import io

import numpy as np
import scipy.ndimage  # noqa: F401  # imported before instrumenting: no input reaches its Python
from _harness import expect_own_error, instrumented, main

with instrumented(__name__, "mnistlab", "PIL"):
    from PIL import Image, ImageDraw

    Image.init()  # import every format plugin now, while the hook instruments them
    from mnistlab.errors import MnistlabError
    from mnistlab.serve.numbers import read_number
    from mnistlab.serve.preprocess import open_image, to_mnist


class Classifier:
    """A stand-in for the model: probabilities from the pixels, cheap and deterministic."""

    class_names = tuple(str(k) for k in range(10))

    def probs(self, x: np.ndarray) -> np.ndarray:
        logits = x.reshape(len(x), -1)[:, :780].reshape(len(x), 10, 78).mean(-1) / 32
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


CLASSIFIER = Classifier()


def check(data: bytes) -> None:
    """Decode ``data`` and make a digit of it, then read it as a number; only the
    project's errors (with a ``kind``, which picks the web app's status code) may escape."""
    try:
        img = open_image(data, "image")
    except MnistlabError as e:
        expect_own_error(e, need_kind=True)
        return
    for step in (_digit, _number):
        try:
            step(img)
        except MnistlabError as e:
            expect_own_error(e, need_kind=True)


def _digit(img: Image.Image) -> None:
    digit = to_mnist(img, "image")
    assert digit.shape == (28, 28) and digit.dtype == np.uint8, (digit.shape, digit.dtype)


def _number(img: Image.Image) -> None:
    result = read_number(CLASSIFIER, img, "image")
    if result.problem:  # a row it cannot read (two rows, sideways): said, nothing read
        assert not (result.number or result.text or result.digits), result
        return
    assert result.number and len(result.number) == len(result.digits)


def _drawing(size: int = 24) -> Image.Image:
    """A dark 4 on white: strokes, a junction and a gap, so the ink finding has work."""
    img = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(img)
    d.line([(7, 3), (4, 14), (18, 14)], fill=0, width=2)
    d.line([(14, 6), (14, 21)], fill=30, width=3)
    return img


def _in_mode(img: Image.Image, mode: str) -> Image.Image:
    """``img`` in ``mode``, the grey levels spread over the wider modes' full range."""
    a = np.asarray(img)
    if mode == "I;16":
        return Image.fromarray(a.astype(np.uint16) * 257)
    if mode == "I":
        return Image.fromarray(a.astype(np.int32) * 257)
    if mode == "F":
        return Image.fromarray(a.astype(np.float32) / 255)
    return img.convert(mode)


# (format, mode, save options): a few of each decoder's variants
VARIANTS = [
    *[("PNG", m, {}) for m in ("L", "RGB", "RGBA", "LA", "P", "1", "I;16")],
    ("PNG", "P", {"transparency": 255}),
    ("PNG", "RGB", {"optimize": True}),
    ("JPEG", "L", {"quality": 80}),
    ("JPEG", "RGB", {"progressive": True}),
    ("JPEG", "CMYK", {}),
    ("GIF", "P", {}),
    ("GIF", "L", {"transparency": 255}),
    *[("BMP", m, {}) for m in ("1", "L", "P", "RGB", "RGBA")],
    *[("TIFF", m, {}) for m in ("1", "L", "RGB", "RGBA", "CMYK", "F", "I;16", "I")],
    *[("TIFF", "L", {"compression": c}) for c in ("tiff_lzw", "tiff_deflate", "packbits", "jpeg")],
    ("TIFF", "1", {"compression": "group4"}),
    ("WEBP", "L", {"lossless": True}),
    ("WEBP", "RGBA", {"quality": 50}),
    *[("PPM", m, {}) for m in ("1", "L", "RGB", "I")],
    ("ICO", "RGBA", {}),
    *[("TGA", m, {}) for m in ("L", "RGB", "P")],
    ("TGA", "RGB", {"compression": "tga_rle"}),
    ("PCX", "L", {}),
    ("SGI", "L", {}),
    ("DDS", "RGBA", {}),
    ("QOI", "RGBA", {}),
    ("XBM", "1", {}),
    ("MSP", "1", {}),
    ("SPIDER", "F", {}),
    ("JPEG2000", "L", {}),
    ("AVIF", "RGB", {}),
]


def seeds() -> list[bytes]:
    """The drawing saved in every variant this Pillow can write, plus an animated GIF
    and a JPEG whose EXIF says "rotate 90" (``open_image`` applies it)."""
    out = []
    base = _drawing()
    for fmt, mode, options in VARIANTS:
        img = _in_mode(base, mode)
        buf = io.BytesIO()
        try:
            img.save(buf, fmt, **options)
        except (OSError, ValueError, KeyError):  # a codec this build of Pillow lacks
            continue
        out.append(buf.getvalue())
    frames = [base, base.rotate(15, fillcolor=255)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    out.append(buf.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    buf = io.BytesIO()
    base.save(buf, "JPEG", exif=exif)
    out.append(buf.getvalue())
    return out


if __name__ == "__main__":
    main("image", check, seeds)
