"""Formatted numbers: separators and spaces kept, marks that are no digit skipped, rows
that cannot be read said so. Rows are written with real MNIST test digits
(``data/number_rows.py``) and read by a real trained model."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnistlab.data.number_rows import FORMATS, by_label, make_row, make_text, masked
from mnistlab.serve.number_result import SEPARATOR
from mnistlab.serve.numbers import draw_number, read_number
from mnistlab.serve.predict import load_predictor
from mnistlab.serve.separators import NOT_DIGITS, SIDEWAYS, TWO_ROWS

ROWS = 6  # rows per case: each must come back right, digits aside


@pytest.fixture(scope="module")
def predictor(trained_run):
    return load_predictor(trained_run)


@pytest.fixture(scope="module")
def pool(mnist):
    x, y = mnist.test
    return by_label(x[:, 0].numpy(), y.numpy())


def _rows(pattern: str, pool, seed: int, n: int = ROWS, **kw) -> list[tuple[Image.Image, str]]:
    rng = np.random.default_rng(seed)
    return [make_row(make_text(pattern, rng), pool, rng, **kw) for _ in range(n)]


def _groups(text: str) -> str:
    """``text`` with each run of digits written ``#``: its separators and spaces alone,
    whatever the digits (a digit broken in two is the segmentation's matter, not this)."""
    return re.sub(r"[0-9]+", "#", text)


def _digits_read(result, truth: str) -> int:
    want = "".join(c for c in truth if c.isdigit())
    return sum(a == b for a, b in zip(result.number, want, strict=False))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pattern", "kind"),
    [
        (FORMATS["phone"], "dash"),
        (FORMATS["price"], "point"),
        (FORMATS["thousands"], "comma"),
        (FORMATS["date_slash"], "slash"),
        (FORMATS["time"], "colon"),
    ],
)
def test_a_separator_between_digits_is_read_as_itself(predictor, pool, pattern, kind):
    mark = {"dash": "-", "point": ".", "comma": ",", "slash": "/", "colon": ":"}[kind]
    right = 0
    for img, truth in _rows(pattern, pool, seed=len(pattern)):
        result = read_number(predictor, img)
        assert _groups(result.text) == _groups(truth), (truth, result.text)
        assert [s.kind for s in result.separators] == [kind] * truth.count(mark)
        assert result.number == "".join(c for c in result.text if c.isdigit())
        # each separator's box lies in the gap between the digits around it
        for s in result.separators:
            before = [d.box[2] for d in result.digits if d.box[2] <= s.box[0]]
            after = [d.box[0] for d in result.digits if d.box[0] >= s.box[2]]
            assert before and after, (truth, s.box, [d.box for d in result.digits])
        right += _digits_read(result, truth)
    digits = ROWS * sum(c == "d" for c in pattern)
    assert right >= 0.9 * digits  # the digits around them are still read


@pytest.mark.slow
def test_spaces_between_groups_are_kept(predictor, pool):
    for img, truth in _rows(FORMATS["date"], pool, seed=3):
        result = read_number(predictor, img)
        assert _groups(result.text) == "# # #", (truth, result.text)
        assert result.number == result.text.replace(" ", "")


@pytest.mark.slow
def test_evenly_spaced_digits_get_no_space_however_wide_apart(predictor, pool):
    rng = np.random.default_rng(4)
    for img, truth in _rows(FORMATS["plain"], pool, seed=4):
        assert " " not in read_number(predictor, img).text, truth
    # five digits a whole digit's height apart, evenly: one group, no spaces
    parts = [_trimmed(pool[d][int(rng.integers(50))]) for d in "90210"]
    img = _side_by_side(parts, gap=28)
    result = read_number(predictor, img)
    assert len(result.digits) == 5 and " " not in result.text


def _trimmed(d: np.ndarray) -> np.ndarray:
    cols = np.flatnonzero(d.max(0) > 30)
    return d[:, cols[0] : cols[-1] + 1]


def _side_by_side(parts: list[np.ndarray], gap: int, scale: int = 4) -> Image.Image:
    width = sum(p.shape[1] for p in parts) + gap * (len(parts) - 1) + 40
    canvas = np.zeros((48, width), np.uint8)
    x = 20
    for p in parts:
        canvas[10:38, x : x + p.shape[1]] = np.maximum(canvas[10:38, x : x + p.shape[1]], p)
        x += p.shape[1] + gap
    return Image.fromarray(255 - canvas).resize((width * scale, 48 * scale), Image.BILINEAR)


@pytest.mark.slow
def test_tiny_specks_of_noise_are_not_separators(predictor, pool):
    ((img, truth),) = _rows(FORMATS["plain"], pool, seed=5, n=1, dark_on_light=True)
    clean = read_number(predictor, img)
    noisy = img.copy()
    draw = ImageDraw.Draw(noisy)
    rng = np.random.default_rng(0)
    for _ in range(12):  # 2-px specks, in the gaps and above and below the row
        x, y = int(rng.integers(img.width)), int(rng.integers(img.height))
        draw.rectangle((x, y, x + 1, y + 1), fill=0)
    result = read_number(predictor, noisy)
    assert result.separators == [] and result.text == clean.text, (truth, result.text)


@pytest.mark.slow
@pytest.mark.parametrize("angle", [90, 270])
def test_a_row_on_its_side_says_so(predictor, pool, angle):
    for img, truth in _rows("dddd", pool, seed=6, n=4, dark_on_light=True):
        on_side = img.rotate(angle, expand=True, fillcolor=255)
        result = read_number(predictor, on_side)
        assert result.problem == SIDEWAYS, (truth, result.text)
        assert result.number == result.text == "" and result.confidence == 0
        assert read_number(predictor, img).problem is None  # upright, it is read


@pytest.mark.slow
def test_two_rows_say_so(predictor, pool):
    rows = _rows("ddd", pool, seed=7, n=4, scale=(3.0, 3.0), dark_on_light=True)
    for (top, t1), (bottom, t2) in zip(rows[::2], rows[1::2], strict=True):
        both = Image.new("L", (max(top.width, bottom.width), top.height + bottom.height), 255)
        both.paste(top, (0, 0))
        both.paste(bottom, (0, top.height))
        result = read_number(predictor, both)
        assert result.problem == TWO_ROWS, (t1, t2, result.text)
        assert result.number == "" and result.digits == []


def _star(size: int) -> Image.Image:
    """A five-pointed star's outline, white on black, ``size`` px."""
    img = Image.new("L", (size, size), 0)
    points = []
    for k in range(10):
        r = (0.45 if k % 2 == 0 else 0.18) * size
        a = np.pi * k / 5 - np.pi / 2
        points.append((size / 2 + r * np.cos(a), size / 2 + r * np.sin(a)))
    ImageDraw.Draw(img).line([*points, points[0]], fill=255, width=max(2, size // 12))
    return img


@pytest.mark.slow
def test_a_mark_that_is_no_digit_is_skipped_and_listed(trained_run, pool):
    predictor = load_predictor(trained_run)  # its own: the threshold is set on it
    predictor.reject_threshold = None  # first every mark counts as a digit
    rng = np.random.default_rng(8)
    img, _ = make_row("12 34", pool, rng, scale=(3.0, 3.0), dark_on_light=False)
    plain = read_number(predictor, img)
    gap_x0, gap_x1 = plain.digits[1].box[2], plain.digits[2].box[0]  # the space between
    side = min(gap_x1 - gap_x0 - 8, plain.digits[1].box[3] - plain.digits[1].box[1])
    x = (gap_x0 + gap_x1 - side) // 2
    y = plain.digits[1].box[3] - side
    img.paste(_star(side), (x, y))
    with_star = read_number(predictor, img)
    assert len(with_star.digits) == 5 and with_star.skipped == []  # no threshold: all digits
    scores = [d.digit_score for d in with_star.digits]
    star = scores[2]
    assert star < min(scores[:2] + scores[3:]), scores  # the model is least sure of the star
    predictor.reject_threshold = (star + min(scores[:2] + scores[3:])) / 2
    result = read_number(predictor, img)
    assert result.number == plain.number and result.text == plain.number  # no space either
    (box,) = result.skipped
    assert box[0] >= gap_x0 and box[2] <= gap_x1  # where the star was drawn
    assert json.loads(json.dumps(result.to_json()))["skipped"] == [list(box)]
    # a row of stars with one digit in it: mostly not digits, said so
    lone = Image.new("L", (side * 5, side * 2), 0)
    for k in (0, 1, 3):
        lone.paste(_star(side), (k * side + k * side // 4, side // 2))
    lone.paste(img.crop(plain.digits[0].box), (int(2.6 * side), side // 2))
    assert read_number(predictor, lone).problem == NOT_DIGITS


@pytest.mark.slow
def test_json_cli_and_picture_carry_the_text(trained_run, predictor, pool, tmp_path, capsys):
    from mnistlab.cli import main

    ((img, _),) = _rows(FORMATS["phone"], pool, seed=9, n=1, dark_on_light=True)
    result = read_number(predictor, img)
    body = json.loads(json.dumps(result.to_json()))
    assert list(body)[:2] == ["number", "text"] and body["problem"] is None
    assert body["text"] == result.text and _groups(body["text"]) == "#-#"
    assert body["number"] == result.text.replace("-", "")
    (sep,) = body["separators"]
    assert sep["kind"] == "dash" and sep["text"] == "-" and len(sep["box"]) == 4
    # the picture: the dash boxed in its own colour
    shown = np.asarray(draw_number(img, result))
    assert (shown == SEPARATOR).all(-1).any()
    phone, rows = tmp_path / "phone.png", tmp_path / "rows.png"
    img.save(phone)
    other, _ = make_row("456", pool, np.random.default_rng(1), dark_on_light=True)
    both = Image.new("L", (max(img.width, other.width), img.height + other.height), 255)
    both.paste(img, (0, 0))
    both.paste(other, (0, img.height))
    both.save(rows)
    assert main(["predict", str(trained_run), str(phone), str(rows), "--number"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{phone}: {result.text} (") and "digits: " in out[0]
    assert out[1] == f"{rows}: cannot read this row: {TWO_ROWS}"
    assert main(["predict", str(trained_run), str(phone), str(rows), "--number", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert items[0]["text"] == result.text and items[0]["number"] == result.number
    assert items[1]["problem"] == TWO_ROWS and items[1]["text"] == items[1]["number"] == ""


def test_rows_are_written_as_asked():
    rng = np.random.default_rng(0)
    pool = {
        str(d): np.pad(np.full((1, 20, 12), 255, np.uint8), ((0, 0), (4, 4), (8, 8)))
        for d in range(10)
    }
    img, text = make_row("12:45", pool, rng, dark_on_light=True)
    assert text == "12:45" and masked(text) == "dd:dd"
    a = np.asarray(img)
    assert np.median(np.r_[a[0], a[-1]]) == 255 and a.min() < 60  # dark ink on white
    # the digits (solid bars) and the colon's two dots: six separate marks of ink
    from scipy import ndimage

    assert ndimage.label(a < 128, np.ones((3, 3)))[1] == 6
    with pytest.raises(ValueError, match="no separator"):
        make_row("1;2", pool, rng)


@pytest.mark.slow
def test_score_rows_scores_against_the_written_text(predictor, mnist):
    from mnistlab.serve.number_score import score_rows

    x, y = mnist.test
    formats = {k: FORMATS[k] for k in ("time", "plain")}
    scores = score_rows(predictor, 4, x[:, 0].numpy(), y.numpy(), seed=0, formats=formats)
    assert set(scores) == set(formats)
    for s in scores.values():  # a whole text right has its separators right too
        assert s["rows"] == 4 and 0 <= s["exact"] <= s["layout"] <= 1 and s["digits"] >= 0.8
    # the ceiling counts rows whose digits the model reads right alone: with the 3s
    # labelled 1 (and the 1s left out), no row holding a 1 is within it
    labels = y.numpy().copy()
    labels[labels == 1], labels[labels == 3] = 10, 1
    wrong = score_rows(predictor, 8, x[:, 0].numpy(), labels, seed=0, formats={"p": "11"})
    assert wrong["p"]["ceiling"] == 0.0
    right = score_rows(predictor, 8, x[:, 0].numpy(), labels, seed=0, formats={"p": "00"})
    assert right["p"]["ceiling"] >= 0.75  # the session model misreads few 0s
