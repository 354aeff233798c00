"""What reading a number costs on hostile images: a few kB of PNG must not cost seconds.

A 2 kB PNG of thin bars, 10,000 x 160 px, once took 2 s in ``predict --number``
and 40,000 px 21 s, the time growing with the square of the width: the flat-piece
merge started again from the first piece after every merge. The work is counted here,
never timed: the lines of ``serve/numbers.py`` that run (``sys.settrace``), for an
image and for one twice as wide. Timings are in ``benchmarks/adversarial.md``.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mnistlab.serve import numbers
from mnistlab.serve.numbers import MAX_DIGITS, read_number
from mnistlab.serve.preprocess import PreprocessError


class Classifier:
    """The model's stand-in: these images are refused before a digit is classified."""

    class_names = tuple("0123456789")

    def probs(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), 10), 0.1, dtype=np.float32)


def flat_comb(width: int, height: int = 160) -> Image.Image:
    """Dark 1-px bars on white, every other one an eighth as tall: as many flat pieces
    as tall ones, each to be merged into a neighbour."""
    a = np.full((height, width), 255, np.uint8)
    a[:, ::4] = 0
    a[height // 2 - height // 16 : height // 2 + height // 16, 2::4] = 0
    return Image.fromarray(a)


def speck_field(width: int, height: int = 160, density: float = 0.3) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(np.where(rng.random((height, width)) < density, 0, 255).astype(np.uint8))


def dominoes(width: int = 160, height: int = 1024) -> Image.Image:
    """2-px specks on every other row, each row shifted a pixel: thousands of marks, all
    overlapping each other in x, so no bound on runs of them refuses the image."""
    a = np.full((height, width), 255, np.uint8)
    for y in range(0, height, 2):
        a[y, (y // 2) % 2 :: 3] = 0
        a[y, (y // 2) % 2 + 1 :: 3] = 0
    return Image.fromarray(a)


def _lines_run(img: Image.Image) -> tuple[int, PreprocessError]:
    """(lines of serve/numbers.py executed, the error) reading ``img``."""
    count = 0
    here = numbers.__file__

    def tracer(frame, event, arg):
        nonlocal count
        if frame.f_code.co_filename != here:
            return None  # numpy, scipy, Pillow: C or not ours, not traced
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        read_number(Classifier(), img, "hostile.png")
    except PreprocessError as e:
        error = e
    else:
        raise AssertionError("a hostile image was read as a number")
    finally:
        sys.settrace(None)
    return count, error


@pytest.mark.parametrize(
    "make",
    [lambda w: flat_comb(w), lambda w: speck_field(w), lambda w: dominoes(height=w)],
    ids=["flat-comb", "speck-field", "dominoes"],
)
def test_reading_work_grows_at_most_linearly_with_the_width(make):
    small, e1 = _lines_run(make(1024))
    large, e2 = _lines_run(make(2048))
    # before: the flat comb ran 178,343 lines at 1,024 px and 684,327 at 2,048 (3.8x)
    assert large <= 2.5 * small, (small, large)
    assert large <= 5_000, large  # bounded, whatever the width: refused early
    assert e1.kind == e2.kind == "too_many_digits"
    assert "\n" not in str(e2) and "crop it to one number" in str(e2)


def test_a_refusal_counted_early_never_refuses_a_number_the_old_merge_read():
    # the early bound: at most half the runs of overlapping pieces can merge away, so
    # 64 separate bars (32 tall, 32 flat between them) are still read, as 32 groups
    # at most; 65 runs are refused at once with "at least 33"
    from mnistlab.serve.numbers import _groups

    def bars(runs: int) -> np.ndarray:
        mask = np.zeros((40, 8 * runs), bool)
        mask[:, 0::16] = True
        mask[18:22, 8::16] = True
        return mask

    assert len(_groups(bars(2 * MAX_DIGITS), "ok.png")) == MAX_DIGITS
    with pytest.raises(PreprocessError, match="at least 33 digits found, more than 32"):
        _groups(bars(2 * MAX_DIGITS + 1), "many.png")


def test_a_long_thin_row_is_no_ink_or_too_many_digits():
    for img in (Image.new("L", (4096, 1), 0), flat_comb(4096, height=16)):
        img.putpixel((0, 0), 255)
        with pytest.raises(PreprocessError) as e:
            read_number(Classifier(), img, "row.png")
        assert e.value.kind in ("no_ink", "too_many_digits"), e.value


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An untrained linear model's checkpoint: these images never reach it."""
    import torch

    from mnistlab import create_model, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "best", create_model("linear"))


@pytest.mark.parametrize(
    ("width", "says"),
    [(10_000, "more than 32; crop it to one number"), (100_000, "too long a strip")],
)
def test_predict_number_refuses_a_wide_comb_in_one_line(model, tmp_path, width, says):
    # through the real CLI: 10,000 px took 2 s, 100,000 px over a minute
    path = tmp_path / "comb.png"
    flat_comb(width).save(path)
    proc = subprocess.run(
        [sys.executable, "-m", "mnistlab", "predict", str(model), str(path), "--number"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and str(path) in lines[0]


class Counting(Classifier):
    """The stand-in, counting the digits it is shown."""

    def __init__(self) -> None:
        self.shown = 0

    def probs(self, x: np.ndarray) -> np.ndarray:
        self.shown += len(x)
        return super().probs(x)


def grid(width: int) -> Image.Image:
    """One connected dark mark, 23 px high, as wide as the image: the fuzzer's slowest
    input (2.4 s of CPU at 1,521 px), a lattice of 1-px gaps every third column."""
    a = np.full((24, width), 255, np.uint8)
    cols = np.arange(width) % 3
    a[:23, cols == 1] = 0  # a bar every third column
    a[7:20][:, cols != 2] = 0  # ... joined to its left neighbour in the middle rows
    a[10:12] = 0  # and a line through them all
    return Image.fromarray(a)


def test_one_mark_wider_than_32_digits_is_refused_before_any_cut():
    # each cut drew 13 candidate digits: 32 cuts cost 400 digits and seconds; no digit
    # is wider than 1.5 heights, so 1,521 px of ink 23 px high hold at least 45
    model = Counting()
    with pytest.raises(PreprocessError, match="at least 45 digits found, more than 32"):
        read_number(model, grid(1521), "grid.png")
    assert model.shown == 0


def test_a_number_that_needs_cuts_is_read_within_the_cpu_budget_or_refused():
    # 8 marks as wide as 2 digits each: every one is cut, each cut drawing candidates
    a = np.array(grid(8 * 40 + 7 * 20))
    for k in range(7):  # gaps between the marks
        a[:, 40 * (k + 1) + 20 * k : 40 * (k + 1) + 20 * (k + 1)] = 255
    img = Image.fromarray(a)
    model = Counting()
    assert len(read_number(model, img, "row.png").digits) == 16
    drawn = model.shown
    with pytest.raises(PreprocessError, match="took over 0 s of CPU") as e:
        read_number(Counting(), img, "row.png", cpu_budget=0.0)
    assert e.value.kind == "too_complex" and "\n" not in str(e.value)
    model = Counting()
    read_number(model, img, "row.png", cpu_budget=60.0)  # a budget it stays within
    assert model.shown == drawn  # the budget changes nothing else
