"""The fuzz harnesses (``fuzz/``, ``make fuzz``) without atheris: each ``check`` replayed
on its seeds and on deterministic mutations of them, and what the app harness found
about declared content lengths; one run under atheris where it is installed.
docs/reliability.md tells each finding's story; the exact inputs the fuzzers found are
tested where they belong (``tests/data/test_idx.py``, ``tests/serve/test_decode.py``,
``tests/serve/test_numbers.py``).
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import random
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

from mnistlab.errors import MnistlabError
from mnistlab.serve.preprocess import PreprocessError
from tests.support.processes import REPO

ROOT = REPO
FUZZ = ROOT / "fuzz"


@pytest.fixture
def harness(monkeypatch):
    """``harness(NAME)``: ``fuzz/fuzz_NAME.py`` as a module. fuzz/ is a folder of scripts,
    not a package: on the path, as when a harness runs, they find ``_harness`` there."""
    monkeypatch.syspath_prepend(str(FUZZ))
    return lambda name: importlib.import_module(f"fuzz_{name}")


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
