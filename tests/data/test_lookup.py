"""Where the data is looked for: one lookup for the loader, ``data verify``, ``data
info`` and ``data download``; a bad data folder, a bad $MNISTLAB_MIRRORS and a wrong
``data show -o`` name each said in one line.

Everything is real: files linked from the shared MNIST copy, a local HTTP server on
127.0.0.1 and `python -m mnistlab` subprocesses. Nothing touches the network.
"""

from __future__ import annotations

import gzip
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from mnistlab.data import (
    DatasetNotFound,
    IdxError,
    download_dataset,
    get_dataset,
    load_arrays,
    locate,
    mirrors_for,
)
from mnistlab.errors import UsageError
from tests.support.cli import error_line
from tests.support.processes import REPO, cli_env

SHARED = REPO.parent / "shared" / "data" / "mnist"
FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")
MNIST = get_dataset("mnist")
NAMES = [f.name for f in MNIST.all_files()]  # train images, labels, then test

if not all((SHARED / n).is_file() for n in NAMES):  # pragma: no cover
    pytest.skip(f"real MNIST not found in {SHARED}", allow_module_level=True)

needs_fashion = pytest.mark.skipif(
    not all((FASHION_SYSTEM / n).is_file() for n in NAMES),
    reason=f"Fashion-MNIST not installed in {FASHION_SYSTEM}",
)


def _link(folder: Path, names=NAMES, src: Path = SHARED) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).symlink_to(src / n)
    return folder


def _ls(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def _cli(*args: str, env_data: Path | str = SHARED, **extra: str):
    env = {**cli_env(Path(env_data)), **extra}  # real data, mirrors on a closed local port
    return subprocess.run(
        [sys.executable, "-m", "mnistlab", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if name not in NAMES:
            self.send_error(404)
            return
        data = (SHARED / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(monkeypatch):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("MNISTLAB_MIRRORS", f"http://127.0.0.1:{srv.server_address[1]}/good/")
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


# ------------------------------------------------------------ data show -o


@pytest.mark.parametrize("name", ["samples.txt", "samples.jpg", "samples"])
def test_show_refuses_a_name_that_is_not_png(tmp_path, name):
    out = tmp_path / name
    out.write_text("keep me\n")
    proc = _cli("data", "show", "-n", "2", "-o", str(out))
    line = error_line(proc, 2)
    assert "--out" in line and ".png" in line and str(out) in line
    assert out.read_text() == "keep me\n"  # untouched
    assert _ls(tmp_path) == [name]


def test_show_refuses_a_folder_named_png(tmp_path):
    out = tmp_path / "grid.png"
    out.mkdir()
    line = error_line(_cli("data", "show", "-o", str(out)), 2)
    assert "folder" in line and str(out) in line


def test_show_refuses_a_negative_seed_as_usage(tmp_path):
    proc = _cli("data", "show", "--seed", "-1", "-o", str(tmp_path / "s.png"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unexpected" not in proc.stderr
    assert _ls(tmp_path) == []


# ----------------------------------------------------- $MNISTLAB_MIRRORS


@pytest.mark.parametrize(
    "value", ["notaurl", "http//x.org/", "http://", "http://h:99999/", "http://[::1/", "x.org/m"]
)
def test_bad_mirror_url_is_a_usage_error(monkeypatch, value):
    monkeypatch.setenv("MNISTLAB_MIRRORS", f"http://ok.example/ {value}")
    with pytest.raises(UsageError) as exc:
        mirrors_for(MNIST)
    msg = str(exc.value)
    assert "MNISTLAB_MIRRORS" in msg and repr(value) in msg and "http" in msg
    assert "\n" not in msg


def test_good_mirror_urls_are_kept(monkeypatch):
    monkeypatch.setenv("MNISTLAB_MIRRORS", "https://a.org/x,file:///srv/mnist ftp://h/p/")
    assert mirrors_for(MNIST) == ["https://a.org/x/", "file:///srv/mnist/", "ftp://h/p/"]


def test_cli_download_with_bad_mirror_is_one_line_exit_2(tmp_path):
    proc = _cli("data", "download", "--data-dir", str(tmp_path), MNISTLAB_MIRRORS="notaurl")
    line = error_line(proc, 2)
    assert "MNISTLAB_MIRRORS" in line and "'notaurl'" in line and "not a URL" in line
    assert _ls(tmp_path) == []  # nothing created


def test_download_from_a_file_url_mirror(monkeypatch, tmp_path):
    """A file:// mirror passes the check and really works (an offline copy)."""
    monkeypatch.setenv("MNISTLAB_MIRRORS", SHARED.as_uri())
    dest = download_dataset(MNIST, tmp_path)
    assert dest == tmp_path / "mnist" and _ls(dest) == sorted(NAMES)


# ------------------------------------------------- verify / info / download


def test_verify_fashion_on_an_mnist_folder_does_not_advise_deleting(tmp_path):
    folder = _link(tmp_path / "data")
    proc = _cli("data", "verify", "--dataset", "fashion-mnist", "--data-dir", str(folder))
    line = error_line(proc, 1)
    assert f"{folder} holds mnist, not fashion-mnist" in line
    assert "delete" not in line and "delete" not in proc.stdout
    assert "mnistlab data download --dataset fashion-mnist" in line
    assert str(folder / "fashion-mnist") in line  # where a download would put it
    assert _ls(folder) == sorted(NAMES)


@needs_fashion
def test_verify_fashion_with_env_on_mnist_checks_the_system_copy():
    proc = _cli("data", "verify", "--dataset", "fashion-mnist")  # MNISTLAB_DATA=SHARED
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert f"verified in {FASHION_SYSTEM}" in " ".join(proc.stdout.split())
    assert f"skipped {SHARED}: it holds mnist" in proc.stdout
    assert proc.stdout.count(": ok") == 4


@needs_fashion
def test_info_names_the_folder_the_loader_reads(monkeypatch):
    monkeypatch.setenv("MNISTLAB_DATA", str(SHARED))
    lookup = locate("fashion-mnist")
    assert lookup.folder == FASHION_SYSTEM and lookup.skipped == [(SHARED, "mnist")]
    proc = _cli("data", "info", "--dataset", "fashion-mnist")
    assert proc.returncode == 0, proc.stderr
    assert f"found in: {FASHION_SYSTEM}" in proc.stdout
    assert f"found in: {SHARED}" not in proc.stdout
    assert "6,000" in proc.stdout  # Fashion-MNIST's balanced counts, not MNIST's 5,923


def test_one_lookup_for_loader_verify_and_info(tmp_path):
    """A complete root beats a partial ROOT/mnist; loader, verify and info agree."""
    root = _link(tmp_path / "root")
    sub = (root / "mnist").mkdir() or root / "mnist"
    (sub / NAMES[0]).write_bytes(b"\x1f\x8b not really gzip")  # partial and broken
    _link(sub, NAMES[1:2])
    lookup = locate("mnist", root)
    assert lookup.folder == root and lookup.complete
    images, labels = load_arrays("mnist", "train", root)  # would fail if sub were read
    assert images.shape == (60000, 28, 28) and labels[:3].tolist() == [5, 0, 4]
    verify = _cli("data", "verify", "--data-dir", str(root))
    assert verify.returncode == 0, verify.stderr
    assert f"verified in {root}" in " ".join(verify.stdout.split())
    info = _cli("data", "info", "--data-dir", str(root))
    assert info.returncode == 0, info.stderr
    assert f"found in: {root}\n" in info.stdout
    assert "5,923" in info.stdout


def test_download_uses_the_four_files_already_in_the_data_dir(tmp_path):
    root = _link(tmp_path / "X")
    # MNISTLAB_MIRRORS is a closed port: any network attempt would fail the command
    proc = _cli("data", "download", "--data-dir", str(root))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.count("already present and verified") == 4
    assert f"ready in {root}" in " ".join(proc.stdout.split())
    assert _ls(root) == sorted(NAMES)  # no empty X/mnist/


def test_download_completes_a_partial_data_dir_in_place(server, tmp_path):
    root = _link(tmp_path / "X", NAMES[:2])
    assert download_dataset(MNIST, root) == root
    assert server.requests == [f"/good/{NAMES[2]}", f"/good/{NAMES[3]}"]
    assert _ls(root) == sorted(NAMES)
    assert locate("mnist", root).complete


def test_train_only_folder_names_the_two_missing_files(tmp_path):
    folder = _link(tmp_path / "X", NAMES[:2])
    lookup = locate("mnist", folder)
    assert lookup.folder == folder and lookup.missing == NAMES[2:]
    with pytest.raises(DatasetNotFound) as exc:
        load_arrays("mnist", "test", folder)
    msg = str(exc.value)
    assert f"incomplete in {folder}: {NAMES[2]}, {NAMES[3]} missing" in msg
    assert NAMES[0] not in msg and "\n" not in msg
    images, _ = load_arrays("mnist", "train", folder)  # what is there still loads
    assert images.shape == (60000, 28, 28)

    proc = _cli("data", "verify", "--data-dir", str(folder))
    line = error_line(proc, 1)
    assert f"{NAMES[2]}, {NAMES[3]} missing" in line and str(folder) in line
    assert f"mnistlab data download --dataset mnist --data-dir {folder}" in line
    assert f"{NAMES[0]}: ok" in proc.stdout and f"{NAMES[2]}: missing" in proc.stdout

    info = _cli("data", "info", "--data-dir", str(folder))
    assert info.returncode == 0 and "Traceback" not in info.stderr
    assert f"{NAMES[2]}, {NAMES[3]} missing" in " ".join(info.stdout.split())


def test_corrupt_file_is_not_called_another_dataset(tmp_path):
    folder = _link(tmp_path / "X", NAMES[:3])
    labels = bytearray(gzip.decompress((SHARED / NAMES[3]).read_bytes()))
    labels[8] = (labels[8] + 1) % 10
    (folder / NAMES[3]).write_bytes(gzip.compress(bytes(labels)))
    assert locate("mnist", folder).folder == folder  # not skipped as "another dataset"
    with pytest.raises(IdxError) as exc:
        load_arrays("mnist", "test", folder)
    assert "checksum mismatch" in str(exc.value) and "data download" in str(exc.value)


@needs_fashion
def test_download_never_replaces_another_datasets_file(server, tmp_path):
    folder = _link(tmp_path / "X", NAMES[:2])  # MNIST train: the folder is MNIST's
    _link(folder, NAMES[2:3], src=FASHION_SYSTEM)  # ... but a Fashion-MNIST test image file
    before = os.readlink(folder / NAMES[2])
    with pytest.raises(Exception) as exc:
        download_dataset(MNIST, folder)
    msg = str(exc.value)
    assert "fashion-mnist's" in msg and "own folder" in msg and "delete" not in msg
    assert os.readlink(folder / NAMES[2]) == before
    assert server.requests == []


@needs_fashion
def test_mnist_asked_with_env_on_fashion_folder_is_not_fashion(tmp_path, monkeypatch):
    root = _link(tmp_path / "root", src=FASHION_SYSTEM)
    monkeypatch.setenv("MNISTLAB_DATA", str(root))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lookup = locate("mnist")
    assert lookup.folder is None and lookup.skipped == [(root, "fashion-mnist")]
    with pytest.raises(IdxError) as exc:
        load_arrays("mnist", "test")
    assert f"{root} holds fashion-mnist, not mnist" in str(exc.value)
    assert np.array_equal(load_arrays("fashion-mnist", "test", root)[1][:2], [9, 2])


def test_data_dir_that_is_a_file_is_a_usage_error(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    for command in ("verify", "info", "download"):
        line = error_line(_cli("data", command, "--data-dir", str(afile)), 2)
        assert f"--data-dir {afile} is a file, not a folder" in line
    line = error_line(_cli("data", "verify", env_data=afile), 2)
    assert f"{afile} (from $MNISTLAB_DATA) is a file" in line
    assert _ls(tmp_path) == ["afile"]
