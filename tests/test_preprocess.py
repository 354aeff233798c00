"""MNIST-style preprocessing on real images: MNIST test digits put through the
transformations people's own images have, and digits drawn with PIL strokes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mnistlab import load_checkpoint
from mnistlab.analysis.evaluate import predict_probs
from mnistlab.serve.preprocess import MAX_PIXELS, PreprocessError, load_digit, open_image, to_mnist

N = 200


@pytest.fixture(scope="module")
def model(trained_run):
    return load_checkpoint(trained_run)[0]


@pytest.fixture(scope="module")
def digits(mnist):
    x, y = mnist.test
    return x[:N, 0].numpy(), y[:N].numpy()


def _accuracy(model, arrays, labels) -> float:
    x = torch.from_numpy(np.stack(arrays)).unsqueeze(1)
    pred = predict_probs(model, x, model.meta.mean, model.meta.std).argmax(1).numpy()
    return float((pred == labels).mean())


def _paper(a: np.ndarray, rng) -> Image.Image:
    """Dark ink on grey paper with a lighting gradient and texture, 200x200."""
    ink = np.asarray(Image.fromarray(255 - a).resize((200, 200), Image.BICUBIC), np.float32) / 255
    xx = np.mgrid[0:200, 0:200][1] / 200
    paper = (0.55 + 0.35 * xx) * (0.9 + 0.05 * rng.standard_normal((200, 200)))
    return Image.fromarray((np.clip(paper * (0.25 + 0.75 * ink), 0, 1) * 255).astype(np.uint8))


def _transparent(a: np.ndarray) -> Image.Image:
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = a  # black ink whose opacity is the MNIST intensity
    return Image.fromarray(rgba, "RGBA")


def _shifted(a: np.ndarray) -> Image.Image:
    canvas = np.zeros((100, 100), np.uint8)
    canvas[4:32, 66:94] = a  # top-right corner of a larger image
    return Image.fromarray(canvas)


VARIANTS = {
    "as is": lambda a, rng: Image.fromarray(a),
    "inverted (black on white)": lambda a, rng: Image.fromarray(255 - a),
    "RGBA, transparent background": lambda a, rng: _transparent(a),
    "scaled to 300x300": lambda a, rng: Image.fromarray(255 - a).resize((300, 300), Image.BICUBIC),
    "scaled to 12x12": lambda a, rng: Image.fromarray(a).resize((12, 12), Image.BOX),
    "shifted off-centre": lambda a, rng: _shifted(a),
    "photo of grey paper, uneven light": _paper,
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_transformed_mnist_digits_are_still_recognised(model, digits, variant):
    images, labels = digits
    rng = np.random.default_rng(0)
    processed = [to_mnist(VARIANTS[variant](a, rng)) for a in images]
    assert all(p.shape == (28, 28) and p.dtype == np.uint8 for p in processed)
    baseline = _accuracy(model, list(images), labels)
    floor = 0.95 if variant == "scaled to 12x12" else 0.97  # 12x12 loses real detail
    assert _accuracy(model, processed, labels) >= min(floor, baseline - 0.01)


def test_polarity_and_transparency_give_the_same_digit(digits):
    a = digits[0][3]
    plain = to_mnist(Image.fromarray(a))
    assert np.array_equal(plain, to_mnist(Image.fromarray(255 - a)))
    assert np.abs(plain.astype(int) - to_mnist(_transparent(a)).astype(int)).max() <= 1


def test_mnist_geometry(digits):
    for a in digits[0][:20]:
        out = to_mnist(_shifted(a)).astype(np.float64)
        ys, xs = np.nonzero(out > 0)
        assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 <= 22  # 20x20 box (+ AA edge)
        cy = (np.indices(out.shape)[0] * out).sum() / out.sum()
        cx = (np.indices(out.shape)[1] * out).sum() / out.sum()
        assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1  # centre of mass at the centre


def _draw(kind: str, size=(300, 300), ink="black", paper="white", mode="RGB", width=22):
    im = Image.new(mode, size, paper)
    d = ImageDraw.Draw(im)
    w, h = size
    if kind == "1":
        d.line([(w * 0.5, h * 0.15), (w * 0.5, h * 0.85)], fill=ink, width=width)
    elif kind == "0":
        d.ellipse([w * 0.3, h * 0.15, w * 0.7, h * 0.85], outline=ink, width=width)
    elif kind == "7":
        d.line(
            [(w * 0.3, h * 0.2), (w * 0.7, h * 0.2), (w * 0.45, h * 0.85)], fill=ink, width=width
        )
    return im


@pytest.mark.parametrize("kind", ["0", "1", "7"])
@pytest.mark.parametrize("mode", ["RGB", "L", "P", "1", "LA", "RGBA-transparent", "I;16"])
def test_drawn_digits_in_every_mode(model, kind, mode):
    im = _draw(kind, mode="RGB")
    if mode == "RGBA-transparent":
        im = _draw(kind, ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA")
    elif mode == "I;16":
        im = Image.fromarray((np.asarray(im.convert("L"), np.uint16) * 257).astype(np.uint16))
        assert im.mode == "I;16"
    else:
        im = im.convert(mode)
    digit = to_mnist(im)
    x = torch.from_numpy(digit)[None, None]
    pred = predict_probs(model, x, model.meta.mean, model.meta.std).argmax(1).item()
    assert str(pred) == kind


def test_specks_do_not_stretch_the_box():
    im = _draw("1")
    d = ImageDraw.Draw(im)
    for xy in [(5, 5), (290, 10), (8, 290), (295, 295)]:
        d.ellipse([xy[0] - 2, xy[1] - 2, xy[0] + 2, xy[1] + 2], fill="black")
    clean, specked = to_mnist(_draw("1")), to_mnist(im)
    assert np.abs(clean.astype(int) - specked.astype(int)).max() <= 2


def test_exif_orientation_is_applied(tmp_path):
    upright = _draw("7", size=(300, 200))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as the camera saved it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    loaded = open_image(tmp_path / "photo.jpg")
    assert loaded.size == (300, 200)
    diff = to_mnist(loaded).astype(int) - to_mnist(upright).astype(int)
    assert np.abs(diff).mean() < 8  # JPEG noise only


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "not an image"),
        (b"hello, this is text", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image"),  # a signature, then junk
    ],
)
def test_unreadable_files(tmp_path, content, needle):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(PreprocessError, match=needle):
        load_digit(path)


def test_truncated_png(tmp_path):
    buf = io.BytesIO()
    _draw("0").save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(PreprocessError, match=r"cut\.png: corrupt or truncated"):
        load_digit(tmp_path / "cut.png")


@pytest.mark.parametrize("paper", [255, 0, 128])
def test_blank_images_have_no_ink(paper):
    with pytest.raises(PreprocessError, match="no ink found"):
        to_mnist(Image.new("L", (120, 80), paper))


def test_decompression_bomb_guard(tmp_path):
    side = int(MAX_PIXELS**0.5) + 16
    Image.new("1", (side, side), 0).save(tmp_path / "bomb.png")  # a few KB on disk
    with pytest.raises(PreprocessError, match="over the limit"):
        load_digit(tmp_path / "bomb.png")
