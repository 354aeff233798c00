"""Issue 15, using a model: predict, export and serve against hostile inputs.

Real files, FIFOs, symlink loops, immutable folders (chattr), a real second
server on the port and real subprocesses. The model is an untrained cnn saved as
a checkpoint: what is checked is the handling, not the accuracy.
"""

from __future__ import annotations

import errno
import http.server
import io
import json
import os
import pty
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnistlab.errors import MnistlabError
from mnistlab.models import create_model
from mnistlab.runs.checkpoint import save_checkpoint
from mnistlab.serve.predict import iter_predictions, load_predictor, shown
from mnistlab.serve.preprocess import PreprocessError, load_digit, to_mnist
from tests.support.processes import cli_env


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    save_checkpoint(folder / "best", create_model("cnn"))
    return folder


def _digit_png(path: Path, seed: int = 0) -> Path:
    """A black-on-white stroke, enough ink for the preprocessing to find."""
    a = np.full((140, 140), 255, np.uint8)
    a[20:120, 60 + seed % 20 : 75 + seed % 20] = 0
    a[20:35, 30:110] = 0
    Image.fromarray(a).save(path)
    return path


def _thin(path: Path, w: int, h: int) -> Path:
    a = np.full((h, w), 255, np.uint8)
    a[:, w // 3 : w // 2] = 0  # ink across the whole thin side
    Image.fromarray(a).save(path)
    return path


def _cli(mnist_dir, *args, timeout=120, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "mnistlab", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(mnist_dir),
        **kwargs,
    )


def _one_line_error(proc, code: int, *needles: str) -> str:
    err = proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout, err)
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "unexpected" not in err
    for needle in needles:
        assert needle in err, err
    return err


def _immutable(folder: Path):
    """``folder`` made immutable with chattr (root cannot write into it), or a skip."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("this file system does not support chattr +i")
    return folder


def _mutable(folder: Path) -> None:
    subprocess.run(["chattr", "-i", str(folder)], capture_output=True)


# -- 1: --show never overwrites an input, and writes only .png -------------------


def test_show_refuses_to_overwrite_an_input_or_a_wrong_extension(run, tmp_path, mnist_dir):
    one = _digit_png(tmp_path / "one.png")
    before = one.read_bytes()
    proc = _cli(mnist_dir, "predict", run, one, "--show", one)
    _one_line_error(proc, 2, "--show", "overwritten")
    assert one.read_bytes() == before and proc.stdout == ""
    for name in ("out.txt", "out.jpg"):
        proc = _cli(mnist_dir, "predict", run, one, "--show", tmp_path / name)
        _one_line_error(proc, 2, "--show", ".png")
        assert not (tmp_path / name).exists()
    link = tmp_path / "link.png"  # another name for the input is still the input
    link.symlink_to(one)
    _one_line_error(_cli(mnist_dir, "predict", run, one, "--show", link), 2, "overwritten")
    assert one.read_bytes() == before


# -- 2: thin or wide images --------------------------------------------------------


@pytest.mark.parametrize("w,h", [(300, 2), (1000, 3), (10000, 2), (2, 300), (3, 1000), (1, 1)])
def test_thin_or_wide_images_never_crash_to_mnist(w, h):
    for ink in (0, 255):
        a = np.full((h, w), 255 - ink, np.uint8)
        a[:, w // 3 : max(w // 2, w // 3 + 1)] = ink
        try:
            digit = to_mnist(Image.fromarray(a))
        except PreprocessError:
            continue  # one clear line is fine
        assert digit.shape == (28, 28) and digit.dtype == np.uint8


def test_predict_a_folder_with_thin_images_classifies_every_other_file(run, tmp_path, mnist_dir):
    for w, h in [(300, 2), (1000, 3), (10000, 2)]:
        _thin(tmp_path / f"thin{w}x{h}.png", w, h)
    _digit_png(tmp_path / "good.png")
    proc = _cli(mnist_dir, "predict", run, tmp_path, "--json")
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stderr
    data = json.loads(proc.stdout)
    assert [Path(d["file"]).name for d in data] == sorted(p.name for p in tmp_path.iterdir())
    assert any(d["file"].endswith("good.png") and "label" in d for d in data)
    assert proc.returncode == (1 if any("error" in d for d in data) else 0)


def test_inspect_image_on_a_thin_image(run, tmp_path, mnist_dir):
    thin = _thin(tmp_path / "thin.png", 10000, 2)
    proc = _cli(mnist_dir, "inspect", run, "--image", thin, "--out", tmp_path / "insp")
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stderr
    if proc.returncode:
        _one_line_error(proc, proc.returncode)


# -- 3: the web API: wrong JSON is 422, statuses come from error kinds ------------


@pytest.fixture(scope="module")
def client(run):
    from fastapi.testclient import TestClient

    from mnistlab.serve.web import create_app

    return TestClient(create_app(run), raise_server_exceptions=False)


@pytest.mark.parametrize(
    "body",
    [{"image": 5}, {"image": None}, {"image": ["x"]}, {"image": {"a": 1}}, [1], "s", 5, 1.5],
)
def test_wrong_json_types_are_422(client, body):
    r = client.post("/api/predict", json=body)
    assert r.status_code == 422 and "expected JSON" in r.json()["error"]


def test_deeply_nested_json_is_422(client):
    r = client.post(
        "/api/predict", content=b"[" * 100_000, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "error" in r.json()


@pytest.mark.parametrize("w,h", [(300, 2), (1000, 3), (10000, 2)])
def test_thin_or_wide_uploads_are_answered(client, tmp_path, w, h):
    data = _thin(tmp_path / "t.png", w, h).read_bytes()
    r = client.post("/api/predict", files={"file": ("t.png", data, "image/png")})
    assert r.status_code in (200, 413, 422), r.text
    assert ("label" in r.json()) == (r.status_code == 200)


def test_status_comes_from_the_error_kind_not_its_words():
    from mnistlab.serve.web.app import _status

    assert _status(MnistlabError("too large, too many pixels")) == 422
    assert _status(MnistlabError("anything", kind="too_large")) == 413
    assert _status(MnistlabError("anything", kind="unsupported_type")) == 415
    assert _status(PreprocessError("x: no ink found", kind="no_ink")) == 422


# -- 6: unwritable outputs and devices --------------------------------------------


def test_export_to_unwritable_places(run, tmp_path, mnist_dir):
    a_file = _digit_png(tmp_path / "a.png")
    _one_line_error(_cli(mnist_dir, "export", run, "-o", tmp_path), 2, "--out")
    _one_line_error(_cli(mnist_dir, "export", run, "-o", ""), 2, "--out", "file name")
    _one_line_error(_cli(mnist_dir, "export", run, "-o", a_file / "m.onnx"), 2, "not a folder")
    _one_line_error(_cli(mnist_dir, "export", run, "-o", run / "best.json"), 2, ".onnx")
    ro = _immutable(tmp_path / "ro")
    try:
        proc = _cli(mnist_dir, "export", run, "-o", ro / "m.onnx")
        _one_line_error(proc, 1, str(ro), "write")
        assert list(ro.iterdir()) == []
    finally:
        _mutable(ro)


def test_export_says_it_created_the_missing_folder(run, tmp_path, mnist_dir):
    out = tmp_path / "new" / "sub" / "m.onnx"
    proc = _cli(mnist_dir, "export", run, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert f"created folder {out.parent}" in proc.stdout and out.is_file()


def test_show_into_an_unwritable_folder(run, tmp_path, mnist_dir):
    one = _digit_png(tmp_path / "one.png")
    proc = _cli(mnist_dir, "predict", run, one, "--show", one / "s.png")
    _one_line_error(proc, 2, "--show", "not a folder")
    ro = _immutable(tmp_path / "ro")
    try:
        proc = _cli(mnist_dir, "predict", run, one, "--show", ro / "s.png")
        _one_line_error(proc, 1, "--show", str(ro))
        assert proc.stdout == ""  # refused before any work
    finally:
        _mutable(ro)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_serve_on_cuda_without_cuda(run, mnist_dir):
    _one_line_error(_cli(mnist_dir, "serve", run, "--device", "cuda"), 2, "--device", "CUDA")


# -- 7: a busy port ----------------------------------------------------------------


def test_serve_on_a_busy_port(run, mnist_dir):
    other = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        port = other.server_address[1]
        proc = _cli(mnist_dir, "serve", run, "--port", port, timeout=60)
        _one_line_error(proc, 1, f"port {port}", "in use", "--port")
        assert "serving" not in proc.stdout
    finally:
        other.shutdown()
        other.server_close()


def test_serve_on_a_privileged_port(run, mnist_dir):
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", 1))
    except OSError as e:
        assert e.errno in (errno.EACCES, errno.EADDRINUSE)
    else:
        pytest.skip("this user may bind privileged ports")
    finally:
        probe.close()
    proc = _cli(mnist_dir, "serve", run, "--port", "1", timeout=60)
    _one_line_error(proc, 1, "port 1", "--port")
    assert "serving" not in proc.stdout


# -- 11: FIFOs, newlines in names, symlink loops, unreadable files -----------------


def test_predict_refuses_a_fifo_and_keeps_going(run, tmp_path, mnist_dir):
    _digit_png(tmp_path / "a.png")
    os.mkfifo(tmp_path / "b.png")
    _digit_png(tmp_path / "c.png")
    proc = _cli(mnist_dir, "predict", run, tmp_path, timeout=60)
    err = _one_line_error(proc, 1, "b.png", "FIFO")
    assert "corrupt" not in err
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == [
        str(tmp_path / "a.png"),
        str(tmp_path / "c.png"),
    ]


def test_a_newline_in_a_file_name_cannot_fake_a_line(run, tmp_path, mnist_dir):
    fake = _digit_png(tmp_path / "x\nfake.png: 9 (99.9%)  top 3: 9 99.9%.png")
    bad = tmp_path / "y\nerror: nothing.png"
    bad.write_bytes(b"not an image")
    proc = _cli(mnist_dir, "predict", run, fake, bad)
    _one_line_error(proc, 1, "y\\nerror: nothing.png")
    (line,) = proc.stdout.splitlines()
    assert line.startswith(str(tmp_path / "x\\nfake.png"))
    proc = _cli(mnist_dir, "predict", run, fake, "--json")  # JSON escapes it already
    assert json.loads(proc.stdout)[0]["file"] == str(fake)
    assert shown("a\nb\x1b[2Jc\udcff") == "a\\nb\\x1b[2Jc\\udcff" and shown("é.png") == "é.png"


def test_rich_markup_in_a_file_name_is_printed_as_is(run, tmp_path, mnist_dir):
    odd = _digit_png(tmp_path / "[bold]x[red].png")
    proc = _cli(mnist_dir, "predict", run, odd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{odd}: ")


def test_a_symlink_loop_is_not_called_corrupt(tmp_path):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(PreprocessError, match="symbolic link loop") as info:
        load_digit(loop)
    assert "corrupt" not in str(info.value) and info.value.kind == "unreadable"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_image_is_not_called_corrupt(tmp_path):
    img = _digit_png(tmp_path / "secret.png")
    img.chmod(0)
    with pytest.raises(PreprocessError, match="permission denied") as info:
        load_digit(img)
    assert "corrupt" not in str(info.value)


def test_a_truncated_image_is_still_called_corrupt(tmp_path):
    img = _digit_png(tmp_path / "t.png")
    img.write_bytes(img.read_bytes()[:200])
    with pytest.raises(PreprocessError, match="corrupt or truncated"):
        load_digit(img)


# -- 12: bounded batches, in order, as they come ----------------------------------


def test_predict_streams_in_bounded_batches_in_input_order(run, tmp_path):
    files = []
    for i in range(11):
        if i in (2, 7):
            (tmp_path / f"{i:02d}.png").write_bytes(b"broken")
        elif i == 9:
            Image.new("L", (40, 40), 255).save(tmp_path / f"{i:02d}.png")  # blank
        else:
            _digit_png(tmp_path / f"{i:02d}.png", seed=i)
        files.append(str(tmp_path / f"{i:02d}.png"))
    predictor = load_predictor(run)
    inner, sizes = predictor.run, []

    def counting(x):
        sizes.append(len(x))
        return inner(x)

    predictor.run = counting
    stream = iter_predictions(predictor, files, workers=2, batch=4)
    first = next(stream)
    assert first.source == files[0] and sizes == [3]  # one batch of 4 (one bad) so far
    results = [first, *stream]
    assert [r.source for r in results] == files
    assert [i for i, r in enumerate(results) if r.error] == [2, 7, 9]
    assert sizes == [3, 3, 2]  # files 0-3, 4-7, 8-10, without the bad ones
    whole = load_predictor(run).probs(np.stack([load_digit(f) for f in files[3:6]]))
    for r, p in zip(results[3:6], whole, strict=True):
        assert r.confidence == pytest.approx(p.max(), abs=1e-5)


def test_streamed_json_is_the_same_text_as_one_dump(run, tmp_path, mnist_dir):
    _digit_png(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"broken")
    proc = _cli(mnist_dir, "predict", run, tmp_path, "--json")
    assert proc.returncode == 1
    assert proc.stdout == json.dumps(json.loads(proc.stdout), indent=2) + "\n"


def _many(folder: Path, n: int) -> Path:
    folder.mkdir()
    buf = io.BytesIO()
    Image.open(_digit_png(folder / "0000.png")).save(buf, "PNG")
    for i in range(1, n):
        (folder / f"{i:04d}.png").write_bytes(buf.getvalue())
    return folder


@pytest.mark.slow
def test_progress_bar_only_on_a_terminal_and_never_in_json(run, tmp_path, mnist_dir):
    folder = _many(tmp_path / "many", 300)
    proc = _cli(mnist_dir, "predict", run, folder, "--json", timeout=300)
    assert proc.returncode == 0 and proc.stderr == ""  # stderr not a terminal: no bar
    assert len(json.loads(proc.stdout)) == 300
    main, sub = pty.openpty()
    seen = []

    def drain():  # read the terminal as it is written, so the child never blocks on it
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "mnistlab", "predict", str(run), str(folder), "--json"],
            stdout=subprocess.PIPE,
            stderr=sub,
            env={**cli_env(mnist_dir), "TERM": "xterm", "COLUMNS": "100"},
        )
        os.close(sub)
        out, _ = child.communicate(timeout=300)
        reader.join(10)
    finally:
        os.close(main)
    assert child.returncode == 0
    assert len(json.loads(out)) == 300  # stdout is pure JSON
    assert b"/300" in b"".join(seen)  # the bar was drawn on the terminal
