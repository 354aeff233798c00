"""What the fuzzers (``fuzz/``, ``make fuzz``) found, each kept as the exact input that
let an exception other than mnistlab's own escape; and the harnesses' ``check``
functions replayed on their seeds and on deterministic mutations of them, so that CI
exercises the harnesses without atheris. docs/reliability.md tells each finding's story.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import random
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw, features

from mnistlab.data.idx import IdxError, decode_idx
from mnistlab.errors import MnistlabError
from mnistlab.serve.numbers import read_number
from mnistlab.serve.preprocess import PreprocessError, load_digit, open_image, to_mnist
from tests.support.processes import REPO

ROOT = REPO
FUZZ = ROOT / "fuzz"
DATA = REPO / "tests" / "support" / "fuzz_inputs"


@pytest.fixture
def harness(monkeypatch):
    """``harness(NAME)``: ``fuzz/fuzz_NAME.py`` as a module. fuzz/ is a folder of scripts,
    not a package: on the path, as when a harness runs, they find ``_harness`` there."""
    monkeypatch.syspath_prepend(str(FUZZ))
    return lambda name: importlib.import_module(f"fuzz_{name}")


# --- the IDX reader ------------------------------------------------------------------

# fuzz_idx's first find: 8 dimensions, some 0 (an empty array, so the size check passed)
# and the others multiplying past 2**63, which numpy's reshape refused with ValueError
IDX_OVERFLOWING_EMPTY = (
    b"\x00\x00\x08\x08\x02\x00\x00\x00\x00\x00\x00\x00\x08\x02\x00\x00\x00\x00"
    b"\x00\x00\x00\x08\x02\x00\x00\x00\x00\x00\x00\x03\x00\x00\x01\x00\x00\x03"
)


def _header(*dims: int) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    "data",
    [IDX_OVERFLOWING_EMPTY, _header(0, 2**32 - 1, 2**32 - 1, 2**32 - 1)],
    ids=["found", "readable"],
)
def test_an_empty_idx_shape_too_big_for_numpy_is_an_idx_error(data):
    with pytest.raises(IdxError, match="too big for any array"):
        decode_idx(data, "odd.idx")


def test_empty_idx_arrays_numpy_can_hold_still_read():
    # the new check refuses only what numpy cannot make: these are valid, empty
    assert decode_idx(_header(0, 2**31), "x").shape == (0, 2**31)
    assert decode_idx(_header(5, 0, 2**32 - 1), "x").shape == (5, 0, 2**32 - 1)


# --- preprocessing from bytes --------------------------------------------------------


class Classifier:
    """The model's stand-in for ``read_number``: it is only asked where to cut."""

    class_names = tuple("0123456789")

    def probs(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), 10), 0.1, dtype=np.float32)


def test_nan_pixels_are_refused_by_read_number_as_by_to_mnist():
    # fuzz_image: a SPIDER image (mode F) of NaNs; to_mnist refused it, read_number's
    # Otsu threshold cast NaN to an integer and np.bincount raised ValueError
    img = open_image((DATA / "spider-nan-pixels.bin").read_bytes(), "scan.spi")
    assert img.mode == "F" and np.isnan(np.asarray(img)).any()
    for read in (lambda: read_number(Classifier(), img, "scan.spi"), lambda: to_mnist(img)):
        with pytest.raises(PreprocessError, match="NaN or infinite") as e:
            read()
        assert e.value.kind == "corrupt"


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
def test_an_avif_the_decoder_rejects_is_corrupt():
    # fuzz_image: libavif's "Not implemented" came out of Image.open as RuntimeError
    data = (DATA / "avif-decoder-runtimeerror.avif").read_bytes()
    with pytest.raises(PreprocessError, match="corrupt or truncated image") as e:
        open_image(data, "photo.avif")
    assert e.value.kind == "corrupt"


def test_a_jpeg_with_corrupt_exif_is_corrupt_not_a_traceback(tmp_path):
    # fuzz_app: the EXIF block's TIFF header is wrong; ImageOps.exif_transpose ran after
    # open_image's error handling and let SyntaxError out (the web app answered 500)
    data = (DATA / "jpeg-corrupt-exif.jpg").read_bytes()
    with pytest.raises(PreprocessError, match="corrupt") as e:
        open_image(data, "photo.jpg")
    assert e.value.kind == "corrupt" and "\n" not in str(e.value)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    with pytest.raises(PreprocessError, match=r"photo\.jpg: corrupt"):
        load_digit(path)


# --- the web app ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "status"),
    [
        (b"\xb2", 200),  # "²": isdigit() said yes, int() raised ValueError (a 500)
        (b"9" * 5000, 413),  # over int()'s 4,300 digits: ValueError too
        (b"0" * 5000 + b"5", 200),  # a small number, however it is written
        (b"0" * 5000 + b"3000000", 413),
        (b"2097152", 200),  # exactly MAX_BODY
        (b"2097153", 413),
    ],
    ids=["superscript-two", "5000-nines", "zeros-then-5", "zeros-then-3M", "limit", "limit+1"],
)
def test_declared_content_lengths_int_refuses(harness, declared, status):
    # found writing fuzz_app's header fuzzing: read_body trusted str.isdigit() before
    # int(); uvicorn's parsers refuse such headers, but the app must not rely on that
    fuzz = harness("app")
    img = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(img).line([(6, 6), (21, 6), (11, 23)], fill=255, width=3)  # a 7
    buf = io.BytesIO()
    img.save(buf, "PNG")
    png = buf.getvalue()
    headers, body = fuzz.request(b"image/png\rcontent-length: " + declared + b"\n" + png)
    got, answer = fuzz._loop.run_until_complete(fuzz._post("/api/predict", headers, body))
    assert got == status, answer


# --- read_number's cost: found by reasoning from what fuzz_image showed, not yet fixed ---


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


# --- the harnesses, without atheris --------------------------------------------------


def _mutations(seeds: list[bytes], count: int, seed: int = 0) -> list[bytes]:
    """Deterministic libFuzzer-like mutations: flip, insert, erase, overwrite with an
    interesting value, truncate, splice two seeds."""
    rng = random.Random(seed)
    special = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"]
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            op = rng.randrange(6)
            if op == 0 and data:
                data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
            elif op == 1:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            elif op == 2:
                del data[at : at + rng.randint(1, 16)]
            elif op == 3:
                data[at : at + 4] = rng.choice(special)
            elif op == 4:
                del data[at:]
            else:
                other = rng.choice(seeds)
                data[at:] = other[rng.randrange(len(other) + 1) :]
        out.append(bytes(data))
    return out


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's, on every corrupt tag it skips
@pytest.mark.parametrize(
    ("name", "count"), [("idx", 400), ("body", 400), ("image", 300), ("number", 150)]
)
def test_harness_checks_pass_on_seeds_and_mutations(harness, name, count):
    fuzz = harness(name)
    seeds = fuzz.seeds()
    assert len(seeds) >= 10
    for data in seeds + _mutations(seeds, count):
        try:
            fuzz.check(data)  # raises anything but the project's own, one-line errors
        except Exception as e:
            raise AssertionError(f"{name} on {data[:80]!r}...: {type(e).__name__}: {e}") from e


def test_harnesses_reject_what_is_not_one_of_ours(harness, monkeypatch):
    # the checks must be able to fail: a foreign exception goes through them
    idx = harness("idx")
    monkeypatch.setattr(idx, "decode_idx", lambda data, name: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        idx.check(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    shared = sys.modules["_harness"]
    with pytest.raises(AssertionError, match="not one line"):
        shared.expect_own_error(MnistlabError("two\nlines"))
    with pytest.raises(AssertionError, match="without a kind"):
        shared.expect_own_error(PreprocessError("no kind"), need_kind=True)


def test_the_image_seeds_reach_many_decoders(harness):
    formats = set()
    for data in harness("image").seeds():
        with Image.open(io.BytesIO(data)) as img:
            formats.add(img.format)
    assert {"PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM"} <= formats, formats
    assert len(formats) >= 15


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_app_answers_every_seed_and_mutation_with_a_documented_status(harness):
    # the real FastAPI app on an untrained model, called as ASGI; check() asserts the
    # status is one of 200/408/413/415/422 and that no exception escaped
    fuzz = harness("app")
    seeds = fuzz.seeds()
    for data in seeds + _mutations(seeds, 60, seed=1):
        fuzz.check(data)


def test_run_reads_libfuzzer_stats(monkeypatch):
    monkeypatch.syspath_prepend(str(FUZZ))
    spec = importlib.util.spec_from_file_location("fuzz_run", FUZZ / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    assert run._runs("#100 pulse\nDone 123456 runs in 61 second(s)\n") == (123456, 61)
    crashed = "#2756\tREDUCE cov: 26\n#9305\tREDUCE cov: 26\n== ERROR: libFuzzer"
    assert run._runs(crashed) == (9305, 0)
    one = {"name": "idx", "runs": 2_000_000, "rate": 95_337.2, "crashes": 0, "slowest": 1}
    rows = run.table([one])
    assert "| idx | 2,000,000 | 95,337 | 0 | 1 |" in rows and "**2,000,000**" in rows
    # a harness's own figure, CPU seconds to the 0.1 ms, wins over libFuzzer's whole ones
    log = "slowest input so far: 0.0021 s (9 bytes)\nslowest input so far: 0.0312 s (14 bytes)\n"
    assert run._slowest(log + "stat::slowest_unit_time_sec: 0\n") == 0.0312
    assert run._slowest("stat::slowest_unit_time_sec: 2\n") == 2
    timed = one | {"name": "number", "runs": 10, "rate": 1.0, "slowest": 0.0312}
    assert "| number | 10 | 1 | 0 | 0.0312 |" in run.table([timed])


@pytest.mark.slow
def test_a_harness_runs_under_atheris(tmp_path):
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            str(FUZZ / "fuzz_idx.py"),
            "-runs=3000",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Done 3000 runs" in proc.stderr
    assert not list(tmp_path.glob("crash-*"))
