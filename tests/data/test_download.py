"""Downloads against a real local HTTP server, and the `mnistlab data` commands.

Nothing here touches the real network: every test sets $MNISTLAB_MIRRORS to the
local server or to a closed port on 127.0.0.1.
"""

from __future__ import annotations

import functools
import gc
import gzip
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from mnistlab.cli import main
from mnistlab.data import DownloadError, download_dataset, get_dataset, mirrors_for, verify_dir
from tests.support.processes import REPO

SHARED = REPO.parent / "shared" / "data" / "mnist"
NAMES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
ALL_OK = dict.fromkeys(NAMES, "ok")
MNIST = get_dataset("mnist")

if not all((SHARED / n).is_file() for n in NAMES):  # pragma: no cover
    pytest.skip(f"real MNIST not found in {SHARED}", allow_module_level=True)


@functools.cache
def _file(name: str) -> bytes:
    return (SHARED / name).read_bytes()


@functools.cache
def _corrupt(name: str) -> bytes:
    data = bytearray(_file(name))
    data[len(data) // 2] ^= 0x55
    return bytes(data)


class _Handler(http.server.BaseHTTPRequestHandler):
    """/missing/ 404s, /good/ serves the real files, /corrupt/ one byte changed,
    /short/ half the body under the full Content-Length; /chunked-cut/ and /garbage/
    are a cut-off chunked transfer and a reply that is not HTTP at all."""

    def log_message(self, format, *args):
        pass

    def _body(self, data: bytes, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.server.requests.append(self.path)
        parts = self.path.split("/", 2)  # "/route/name" -> ["", "route", "name"]
        route, name = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
        if route == "missing" or name not in NAMES:
            self.send_error(404)
        elif route == "good":
            self._body(_file(name))
        elif route == "corrupt":
            self._body(_corrupt(name))
        elif route == "short":
            data = _file(name)
            self._body(data[: len(data) // 2], length=len(data))
            self.close_connection = True
        elif route == "chunked-cut":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"400\r\n" + _file(name)[:1024] + b"\r\n")
            self.close_connection = True
        elif route == "garbage":
            self.wfile.write(b"garbage, not an HTTP status line\r\n\r\n")
            self.close_connection = True
        else:
            self.send_error(404)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        yield SimpleNamespace(
            requests=srv.requests, url=lambda route: f"{base}/{route}/", base=base
        )
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, closed_port, tmp_path_factory):
    """Never the real network, and never a write outside tmp: even if --data-dir lost
    to $MNISTLAB_DATA or the cache, a download would land in an empty temp folder."""
    monkeypatch.setenv("MNISTLAB_MIRRORS", closed_port)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.setenv("MNISTLAB_DATA", str(elsewhere / "env-root"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(elsewhere / "cache"))
    shared_before = _ls(SHARED)
    yield
    assert _ls(SHARED) == shared_before


def _mirrors(monkeypatch, *urls: str) -> None:
    monkeypatch.setenv("MNISTLAB_MIRRORS", " ".join(urls))


def _ls(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def _link(folder: Path, names) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).symlink_to(SHARED / n)
    return folder


# ---------------------------------------------------------------------- mirrors


def test_mirrors_from_env_comma_or_space_separated(monkeypatch):
    monkeypatch.setenv("MNISTLAB_MIRRORS", "http://a/x, http://b/y/  http://c")
    assert mirrors_for(MNIST) == ["http://a/x/", "http://b/y/", "http://c/"]
    monkeypatch.delenv("MNISTLAB_MIRRORS")
    assert mirrors_for(MNIST) == list(MNIST.mirrors)
    assert all(m.endswith("/") for m in mirrors_for(MNIST))


# ------------------------------------------------------------------- downloads


def test_first_mirror_404_then_second_is_used(server, monkeypatch, tmp_path):
    _mirrors(monkeypatch, server.url("missing"), server.url("good"))
    logs = []
    dest = download_dataset(MNIST, tmp_path, log=logs.append)
    assert dest == tmp_path / "mnist"
    assert _ls(dest) == sorted(NAMES)
    assert verify_dir(MNIST, dest) == ALL_OK
    for n in NAMES:
        assert (dest / n).read_bytes() == _file(n)
    expected = [p for n in NAMES for p in (f"/missing/{n}", f"/good/{n}")]
    assert server.requests == expected
    assert any("HTTP 404" in line for line in logs)


def test_checksum_mismatch_is_rejected_and_nothing_left(server, monkeypatch, tmp_path):
    _mirrors(monkeypatch, server.url("corrupt"))
    with pytest.raises(DownloadError) as exc:
        download_dataset(MNIST, tmp_path)
    msg = str(exc.value)
    assert "checksum mismatch" in msg
    assert f"/corrupt/{NAMES[0]}" in msg
    assert "\n" not in msg
    assert _ls(tmp_path / "mnist") == []  # no file, no temp file
    assert server.requests == [f"/corrupt/{NAMES[0]}"]


def test_checksum_mismatch_then_good_mirror(server, monkeypatch, tmp_path):
    _mirrors(monkeypatch, server.url("corrupt"), server.url("good"))
    dest = download_dataset(MNIST, tmp_path)
    assert _ls(dest) == sorted(NAMES)
    assert verify_dir(MNIST, dest) == ALL_OK


def test_cut_off_transfer_then_good_mirror(server, monkeypatch, tmp_path):
    _mirrors(monkeypatch, server.url("short"), server.url("good"))
    dest = download_dataset(MNIST, tmp_path)
    assert _ls(dest) == sorted(NAMES)  # no temp files left
    assert verify_dir(MNIST, dest) == ALL_OK
    assert server.requests[:2] == [f"/short/{NAMES[0]}", f"/good/{NAMES[0]}"]


def test_cut_off_transfer_only(server, monkeypatch, tmp_path):
    _mirrors(monkeypatch, server.url("short"))
    with pytest.raises(DownloadError) as exc:
        download_dataset(MNIST, tmp_path)
    half, full = len(_file(NAMES[0])) // 2, len(_file(NAMES[0]))
    assert f"connection closed after {half} of {full} bytes" in str(exc.value)
    assert _ls(tmp_path / "mnist") == []


def test_no_network_error_is_one_line_naming_files_and_folder(monkeypatch, tmp_path, closed_port):
    _mirrors(monkeypatch, closed_port)
    with pytest.raises(DownloadError) as exc:
        download_dataset(MNIST, tmp_path)
    msg = str(exc.value)
    assert len(msg.splitlines()) == 1 and msg.strip() == msg
    for n in NAMES:
        assert n in msg
    assert str(tmp_path / "mnist") in msg
    assert closed_port in msg
    assert _ls(tmp_path / "mnist") == []


def test_present_valid_files_are_not_downloaded_again(server, monkeypatch, tmp_path):
    dest = _link(tmp_path / "mnist", [NAMES[0]])
    # a decompressed copy counts as present too
    (dest / NAMES[3].removesuffix(".gz")).write_bytes(gzip.decompress(_file(NAMES[3])))
    _mirrors(monkeypatch, server.url("good"))
    assert download_dataset(MNIST, tmp_path) == dest
    assert server.requests == [f"/good/{NAMES[1]}", f"/good/{NAMES[2]}"]
    assert verify_dir(MNIST, dest) == ALL_OK
    download_dataset(MNIST, tmp_path)
    assert len(server.requests) == 2  # second run: nothing fetched


def test_present_but_corrupt_file_is_downloaded_again(server, monkeypatch, tmp_path):
    dest = _link(tmp_path / "mnist", NAMES[:3])
    (dest / NAMES[3]).write_bytes(_file(NAMES[3])[:100])
    _mirrors(monkeypatch, server.url("good"))
    download_dataset(MNIST, tmp_path)
    assert server.requests == [f"/good/{NAMES[3]}"]
    assert (dest / NAMES[3]).read_bytes() == _file(NAMES[3])
    assert _ls(dest) == sorted(NAMES)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_failed_mirror_leaks_no_file_descriptor(server, monkeypatch, tmp_path):
    dest = _link(tmp_path / "mnist", NAMES[:3])
    _mirrors(monkeypatch, server.url("missing"), server.url("good"))
    download_dataset(MNIST, tmp_path)
    assert server.requests == [f"/missing/{NAMES[3]}", f"/good/{NAMES[3]}"]
    gc.collect()
    open_in_dest = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(dest)):
            open_in_dest.append(target)
    assert open_in_dest == []


@pytest.mark.parametrize("route", ["chunked-cut", "garbage"])
def test_broken_http_reply_falls_through_to_next_mirror(server, monkeypatch, tmp_path, route):
    dest = _link(tmp_path / "mnist", NAMES[:3])
    _mirrors(monkeypatch, server.url(route), server.url("good"))
    download_dataset(MNIST, tmp_path)
    assert server.requests == [f"/{route}/{NAMES[3]}", f"/good/{NAMES[3]}"]
    assert _ls(dest) == sorted(NAMES)


# ------------------------------------------------------------------------ CLI


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    assert len(lines[0]) > len("error: ")
    return lines[0]


def test_cli_download_without_network(monkeypatch, tmp_path, capsys, closed_port):
    _mirrors(monkeypatch, closed_port)
    assert main(["data", "download", "--data-dir", str(tmp_path)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    for n in NAMES:
        assert n in line
    assert str(tmp_path / "mnist") in line


def test_cli_download_from_good_mirror(server, monkeypatch, tmp_path, capsys):
    _mirrors(monkeypatch, server.url("missing"), server.url("good"))
    assert main(["data", "download", "--data-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "ready in" in out
    assert _ls(tmp_path / "mnist") == sorted(NAMES)
    assert verify_dir(MNIST, tmp_path / "mnist") == ALL_OK


def test_cli_verify_good_dir(capsys):
    assert main(["data", "verify", "--data-dir", str(SHARED)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for n in NAMES:
        assert f"{n}: ok" in out


def test_cli_verify_dir_with_one_corrupted_file(tmp_path, capsys):
    dest = _link(tmp_path, NAMES[:3])
    labels = bytearray(gzip.decompress(_file(NAMES[3])))
    labels[8] = (labels[8] + 1) % 10  # a different, still valid, first test label
    (dest / NAMES[3]).write_bytes(gzip.compress(bytes(labels)))
    assert main(["data", "verify", "--data-dir", str(dest)]) == 1
    out, err = capsys.readouterr()
    line = _one_error_line(err)
    assert "1 of 4" in line
    assert "checksum" in out
    for n in NAMES[:3]:
        assert f"{n}: ok" in out


def test_cli_verify_missing_dir(tmp_path, capsys):
    assert main(["data", "verify", "--data-dir", str(tmp_path)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "not found" in line and str(tmp_path / "mnist") in line


@pytest.mark.slow
def test_cli_show_writes_png(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "s.png"
    code = main(["data", "show", "--data-dir", str(SHARED), "-n", "8", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as img:
        img.load()
        width, height = img.size
        extrema = img.convert("L").getextrema()
    assert width >= 8 * 28 and height >= 28
    assert width > 2 * height  # one row of 8 samples
    assert extrema[0] < extrema[1]  # not a blank picture
    assert _ls(tmp_path) == ["s.png"]


def test_cli_show_bad_start_is_one_line(capsys):
    code = main(["data", "show", "--data-dir", str(SHARED), "--split", "test", "--start", "10000"])
    assert code == 1
    assert "past the end" in _one_error_line(capsys.readouterr().err)


def test_copy_of_downloaded_folder_is_found_by_the_loader(server, monkeypatch, tmp_path):
    """What the download wrote is what load_arrays reads, through $MNISTLAB_DATA."""
    from mnistlab.data import load_arrays

    dest = _link(tmp_path / "dl" / "mnist", NAMES[:3])
    _mirrors(monkeypatch, server.url("good"))
    download_dataset(MNIST, tmp_path / "dl")
    shutil.copytree(dest, tmp_path / "copy", symlinks=False)
    monkeypatch.setenv("MNISTLAB_DATA", str(tmp_path / "copy"))
    images, labels = load_arrays("mnist", "test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
