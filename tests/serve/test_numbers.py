"""Reading a row of digits: segmentation on constructed images with known answers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnistlab.serve.numbers import MAX_DIGITS, read_number, segment
from mnistlab.serve.predict import load_predictor
from mnistlab.serve.preprocess import PreprocessError, open_image, to_mnist
from tests.support import FUZZ_INPUTS


@pytest.fixture(scope="module")
def predictor(trained_run):
    return load_predictor(trained_run)


@pytest.fixture(scope="module")
def digits(mnist):
    x, y = mnist.test
    return x[:, 0].numpy(), y.numpy()


def _trimmed(d: np.ndarray) -> np.ndarray:
    cols = np.flatnonzero(d.max(0) > 30)
    return d[:, cols[0] : cols[-1] + 1]


def _row(parts: list[np.ndarray], gap: int, scale: int = 4) -> Image.Image:
    """Dark digits on white paper, side by side ``gap`` pixels apart (28 px high), enlarged."""
    width = sum(p.shape[1] for p in parts) + gap * (len(parts) - 1) + 40
    canvas = np.zeros((48, width), np.uint8)
    x = 20
    for p in parts:
        region = canvas[10:38, x : x + p.shape[1]]
        np.maximum(region, p, out=region)
        x += p.shape[1] + gap
    img = Image.fromarray(255 - canvas)
    return img.resize((width * scale, 48 * scale), Image.BILINEAR)


def _first(digits, label: int, skip: int = 0) -> np.ndarray:
    x, y = digits
    return _trimmed(x[np.flatnonzero(y == label)[skip]])


@pytest.mark.slow
def test_digits_apart_are_found_in_order_with_their_boxes(predictor, digits):
    parts = [_first(digits, d) for d in (9, 0, 2, 1, 0)]
    img = _row(parts, gap=8)
    result = read_number(predictor, img)
    assert result.number == "90210"  # a string: the leading digit and zeros survive
    xs = [d.box[0] for d in result.digits]
    assert xs == sorted(xs) and len(set(xs)) == 5
    # each box lies inside the image and holds its digit's 28 px height (x4), roughly
    for d in result.digits:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
        assert 40 <= y1 - y0 <= 112
    assert 0 < result.confidence <= min(d.confidence for d in result.digits)


@pytest.mark.slow
def test_a_touching_pair_is_split(predictor, digits):
    parts = [_first(digits, 3), _first(digits, 4)]
    masks, _, _ = segment(predictor, _row(parts, gap=0))
    assert len(masks) == 2
    assert read_number(predictor, _row(parts, gap=0)).number == "34"


@pytest.mark.slow
def test_a_broken_digit_is_merged(predictor, digits):
    seven = _first(digits, 7).copy()
    rows = np.flatnonzero(seven.max(1) > 30)
    mid = (rows[0] + rows[-1]) // 2
    seven[mid - 1 : mid + 2] = 0  # a gap across the stroke: two pieces, one above the other
    one = _first(digits, 1)
    result = read_number(predictor, _row([seven, one], gap=10))
    assert len(result.digits) == 2 and result.number[1] == "1"


def test_a_single_digit_is_a_one_digit_number(predictor, digits):
    result = read_number(predictor, _row([_first(digits, 5)], gap=0))
    assert result.number == "5" and len(result.digits) == 1


@pytest.mark.slow
def test_a_lone_flat_digit_read_surely_stays_one_digit(predictor, digits):
    """MNIST fits a digit's longer side to its box, so a flat 2 or 7 is up to twice as
    wide as tall: drawn alone, where the model reads it whole at 99.9% or more, it is
    one digit, not cut in two."""
    from mnistlab.serve.preprocess import to_mnist

    x, y = digits
    checked = 0
    for i, d in enumerate(x):
        rows, cols = np.flatnonzero(d.max(1) > 30), np.flatnonzero(d.max(0) > 30)
        wide = (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)
        if not 1.55 <= wide <= 1.95:  # 1 in 300 of MNIST test
            continue
        img = _row([_trimmed(d)], gap=0)
        probs = predictor.probs(to_mnist(img)[None])[0]
        if probs.max() < 0.999 or probs.argmax() != y[i]:
            continue
        result = read_number(predictor, img)
        assert result.number == str(y[i]), (i, result.number)
        checked += 1
    assert checked  # flat digits the model is sure of were found and read


def test_a_blank_image_is_no_ink(predictor):
    with pytest.raises(PreprocessError) as e:
        read_number(predictor, Image.new("L", (200, 80), 255))
    assert e.value.kind == "no_ink"


def test_more_than_32_digits_are_refused(predictor):
    canvas = np.full((60, 40 * 34), 255, np.uint8)
    for i in range(34):  # 34 short bars: 34 digit-like strokes
        canvas[10:50, 40 * i + 18 : 40 * i + 22] = 0
    with pytest.raises(PreprocessError, match=f"more than {MAX_DIGITS}") as e:
        read_number(predictor, Image.fromarray(canvas))
    assert e.value.kind == "too_many_digits"


def _png_bytes(img: Image.Image) -> bytes:

    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_predict_number_json_show_and_errors(trained_run, digits, tmp_path, capsys):
    import json

    from mnistlab.cli import main

    good = tmp_path / "zip.png"
    _row([_first(digits, d) for d in (0, 7, 1)], gap=8).save(good)
    blank = tmp_path / "blank.png"
    Image.new("L", (120, 60), 255).save(blank)
    show = tmp_path / "boxes.png"
    cmd = ["predict", str(trained_run), str(good), str(blank), "--number", "--json"]
    assert main([*cmd, "--show", str(show)]) == 1  # one file failed: status 1, the other read
    out = json.loads(capsys.readouterr().out)
    assert out[0]["file"] == str(good) and out[0]["number"] == "071"
    assert [d["label"] for d in out[0]["digits"]] == ["0", "7", "1"]
    assert all(len(d["box"]) == 4 and 0 < d["confidence"] <= 1 for d in out[0]["digits"])
    assert "no ink" in out[1]["error"]
    assert Image.open(show).size[0] > 100  # the original with its boxes
    assert main(["predict", str(trained_run), str(good), "--number"]) == 0
    text = capsys.readouterr().out
    assert "071" in text and "digits:" in text


@pytest.mark.slow
def test_api_read(trained_run, digits):
    from fastapi.testclient import TestClient

    from mnistlab.serve.web import create_app

    client = TestClient(create_app(trained_run))
    img = _png_bytes(_row([_first(digits, d) for d in (4, 2)], gap=8))
    body = client.post("/api/read", files={"file": ("n.png", img, "image/png")}).json()
    assert body["number"] == "42" and len(body["digits"]) == 2
    assert set(body["digits"][0]) == {"label", "confidence", "box"}
    blank = _png_bytes(Image.new("L", (120, 60), 255))
    res = client.post("/api/read", files={"file": ("b.png", blank, "image/png")})
    assert res.status_code == 422 and "no ink" in res.json()["error"]
    bars = np.full((60, 40 * 34), 255, np.uint8)
    for i in range(34):
        bars[10:50, 40 * i + 18 : 40 * i + 22] = 0
    many = _png_bytes(Image.fromarray(bars))
    res = client.post("/api/read", files={"file": ("m.png", many, "image/png")})
    assert res.status_code == 422 and "more than 32" in res.json()["error"]
    res = client.post("/api/read", content=b"junk", headers={"content-type": "text/plain"})
    assert res.status_code == 415
    assert client.get("/healthz").status_code == 200  # still up


class Classifier:
    """The model's stand-in for ``read_number``: it is only asked where to cut."""

    class_names = tuple("0123456789")

    def probs(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), 10), 0.1, dtype=np.float32)


def test_nan_pixels_are_refused_by_read_number_as_by_to_mnist():
    # fuzz_image: a SPIDER image (mode F) of NaNs; to_mnist refused it, read_number's
    # Otsu threshold cast NaN to an integer and np.bincount raised ValueError
    img = open_image((FUZZ_INPUTS / "spider-nan-pixels.bin").read_bytes(), "scan.spi")
    assert img.mode == "F" and np.isnan(np.asarray(img)).any()
    for read in (lambda: read_number(Classifier(), img, "scan.spi"), lambda: to_mnist(img)):
        with pytest.raises(PreprocessError, match="NaN or infinite") as e:
            read()
        assert e.value.kind == "corrupt"


def _row_of_specks(width: int = 4096, height: int = 16, step: int = 3) -> Image.Image:
    """1,366 two-pixel specks in a row: a 155-byte PNG."""
    a = np.zeros((height, width), np.uint8)
    a[height // 2 - 1 : height // 2 + 1, ::step] = 255
    return Image.fromarray(a)


def _row_of_waves(width: int = 4096, height: int = 40, groups: int = 30) -> Image.Image:
    """30 wavy lines side by side, each much wider than high: a 3.2 kB PNG."""
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    span = width // groups
    for g in range(groups):
        xs = range(g * span + 2, (g + 1) * span - 2)
        draw.line([(x, height / 2 + height / 3 * np.sin(x / 5)) for x in xs], fill=255, width=2)
    return img


class CountingClassifier(Classifier):
    """The stand-in, counting the digits it is shown: the work ``read_number`` does."""

    def __init__(self) -> None:
        self.shown = 0

    def probs(self, x: np.ndarray) -> np.ndarray:
        self.shown += len(x)
        return super().probs(x)


def test_a_row_of_too_many_specks_is_refused_before_a_mask_per_speck():
    # found by timing fuzz_image's slow inputs: 155 bytes of PNG, 1,366 specks in a row,
    # took 2 s: a full-size mask was made for each before the 32-digit limit was checked.
    # Now the groups are counted first (cutting only adds digits)
    from mnistlab.serve.numbers import _groups

    mask = np.asarray(_row_of_specks()) > 0
    with pytest.raises(PreprocessError, match="more than 32") as e:
        _groups(mask, "row.png")
    assert e.value.kind == "too_many_digits"
    with pytest.raises(PreprocessError, match="more than 32"):
        read_number(Classifier(), _row_of_specks(), "row.png")


def test_cutting_wide_groups_stops_at_the_digit_limit():
    # 3 kB of wavy lines took 8 s: 30 groups, each wide, each cut and cut again, every cut
    # classified, before the limit was checked. Now every cut counts at once, which bounds
    # the work whatever the image: measured as the digits the classifier is shown (before:
    # thousands), not in seconds
    classifier = CountingClassifier()
    with pytest.raises(PreprocessError, match="more than 32") as e:
        read_number(classifier, _row_of_waves(), "row.png")
    assert e.value.kind == "too_many_digits"
    assert classifier.shown <= 2 * 6 * (32 + 1) + 32  # both sides of <= 6 cuts per split
