"""Shared fixtures: the real MNIST files, a copy of them in memory, and one trained cnn."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mnistlab  # noqa: F401  (sets ORT_DISABLE_TELEMETRY before a test imports onnxruntime)
from tests.support.processes import REPO, cli_env

# Under pytest-xdist (make test) the workers share the cores: each one's torch, and each
# command it starts, gets its share of threads. Two workers each running 2 OpenMP
# threads on 2 cores spin against each other; some tests took 4 times as long.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)  # for the commands they start


def _mnist_dir() -> Path:
    env = os.environ.get("MNISTLAB_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data" / "mnist"]:
        if (cand / "train-images-idx3-ubyte.gz").is_file():
            return cand
        if (cand / "mnist" / "train-images-idx3-ubyte.gz").is_file():
            return cand / "mnist"
    raise RuntimeError(
        "real MNIST not found: set MNISTLAB_DATA to the folder holding the four .gz files "
        "(../shared/data/mnist in this project's layout)"
    )


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return _mnist_dir()


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """Train (55k) / val (5k, seed 0) / test (10k) on the CPU, as uint8 tensors."""
    from mnistlab.data import load_data

    return load_data("mnist", mnist_dir, "cpu", val_size=5000, seed=0)


def _shared_root(tmp_path_factory) -> Path:
    """This session's temporary folder, above each pytest-xdist worker's own."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def made_once(tmp_path_factory, name: str, make) -> Path:
    """``make(folder)`` once per test session, even across pytest-xdist's workers (``make
    test`` runs them): the first worker to ask makes ``folder`` while holding a file lock,
    the others wait for it, then share it."""
    from filelock import FileLock

    root = _shared_root(tmp_path_factory)
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


# The suite's one full-MNIST training: the default recipe without its augmentations,
# one epoch (about 98% on MNIST test).
CNN_TRAIN = ["train", "--model", "cnn", "--epochs", "1", "--augment", "none"]


def _start_cnn_training(tmp_path_factory) -> Path:
    """Start ``mnistlab CNN_TRAIN`` in the background, once per session (the first
    worker to ask starts it), so that the workers go on with other tests while it
    trains; ``cnn-cli/rc`` appears when it has ended."""
    from filelock import FileLock

    root = _shared_root(tmp_path_factory)
    folder = root / "cnn-cli"
    with FileLock(str(root / "cnn-cli.lock")):
        if not folder.exists():
            folder.mkdir()
            cmd = [sys.executable, "-m", "mnistlab", *CNN_TRAIN, "--out-dir", "runs"]
            script = '"$@" >stdout.txt 2>stderr.txt; echo $? >rc.tmp && mv rc.tmp rc'
            subprocess.Popen(
                ["sh", "-c", script, "sh", *cmd],
                cwd=folder,
                env=cli_env(_mnist_dir()),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
    return folder


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected what will not run
def pytest_collection_modifyitems(session, config, items):
    # Files with slow tests first, those that need the shared cnn (training in the
    # background meanwhile) after the others, and each file's tests together and in
    # their order. Under pytest-xdist (make test hands out whole files in this order,
    # with --no-loadscope-reorder) the long files start early and the short ones fill
    # in at the end, instead of one worker finishing a long file alone while the other
    # waits, or both waiting for the cnn at the start.
    first = {item.path: i for i, item in reversed(list(enumerate(items)))}
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    cnn = {item.path for item in items if "cnn_cli_run" in item.fixturenames}

    def place(item) -> tuple[int, int]:
        group = 2 if item.path not in slow else 1 if item.path in cnn else 0
        return group, first[item.path]

    items.sort(key=place)
    if cnn:
        _start_cnn_training(config._tmp_path_factory)


@pytest.fixture(scope="session")
def cnn_cli_run(tmp_path_factory) -> tuple[Path, str]:
    """(run folder, stdout) of ``mnistlab train --model cnn --epochs 1 --augment none``.

    The one full-MNIST training of the suite (the default recipe without its
    augmentations, about 98% on MNIST test), started in the background as the session
    collects its tests, and shared by every test that needs a trained model. Tests may
    add ``eval/``, ``inspect/`` or ``report.html`` to the folder; none may change the
    checkpoints (copy it: ``support.files.copy_run``).
    """
    folder = _start_cnn_training(tmp_path_factory)  # started already, unless asked late
    rc, deadline = folder / "rc", time.monotonic() + 900
    while not rc.exists():
        assert time.monotonic() < deadline, "the shared cnn did not finish training in 15 min"
        time.sleep(0.2)
    assert rc.read_text().strip() == "0", (folder / "stderr.txt").read_text()
    (run,) = (folder / "runs").iterdir()
    return run, (folder / "stdout.txt").read_text()


@pytest.fixture(scope="session")
def trained_run(cnn_cli_run) -> Path:
    """A cnn trained for one epoch, unaugmented (about 98% on MNIST test)."""
    return cnn_cli_run[0]


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path_factory, mnist_dir):
    # Tests must never download: point the data lookup at the real files and the
    # mirrors at nothing, and keep torch to the same thread count everywhere.
    monkeypatch.setenv("MNISTLAB_DATA", str(mnist_dir))
    monkeypatch.setenv("MNISTLAB_MIRRORS", "http://127.0.0.1:9/")
    torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def upload(mnist) -> tuple[bytes, bytes, str]:
    """(headers, body, true label): a multipart POST of a real MNIST test digit as a
    280x280 black-on-white PNG, the way the drawing page sends one."""
    a = 255 - mnist.test[0][3, 0].numpy()
    buf = io.BytesIO()
    Image.fromarray(a).resize((280, 280), Image.BICUBIC).save(buf, "PNG")
    boundary = "mnistlab-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + buf.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        "POST /api/predict?input28=false HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head, body, str(int(mnist.test[1][3]))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder from a dry run (two batches): enough for evaluate, inspect, report.
    Made once per session, in a worker's own process; tests read it, and copy it
    (``tiny_run_copy``) to change it."""
    from tests.support.cli import run_main

    def train(out: Path) -> None:
        args = ["train", "--model", "mlp-small", "--dry-run", "--train-subset", "500"]
        args += ["--out-dir", out, "--device", "cpu", "--data-dir", _mnist_dir()]
        proc = run_main(*args)
        assert proc.returncode == 0, proc.stderr

    (run,) = made_once(tmp_path_factory, "tiny", train).iterdir()
    return run


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run, without the pictures training left, that a test may
    damage or lock."""
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    for derived in ("eval", "inspect"):
        shutil.rmtree(run / derived, ignore_errors=True)
    return run


@pytest.fixture(scope="session")
def untrained_run(tmp_path_factory) -> Path:
    """A run folder holding an untrained cnn checkpoint: for what checks the handling of
    inputs and outputs, not the accuracy."""
    from mnistlab.models import create_model
    from mnistlab.runs.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    save_checkpoint(folder / "best", create_model("cnn"))
    return folder


@pytest.fixture
def saved_runs(tmp_path):
    """Two run folders holding an untrained (but valid) cnn checkpoint each, and a PNG."""
    from mnistlab.models import create_model
    from mnistlab.runs.checkpoint import save_checkpoint
    from tests.support.references import randomised

    runs = []
    for i in range(2):
        run = tmp_path / f"run{i}"
        run.mkdir()
        save_checkpoint(run / "best", randomised(create_model("cnn"), seed=10 + i), {})
        runs.append(run)
    png = tmp_path / "digit.png"
    canvas = np.full((80, 80), 255, np.uint8)
    canvas[15:65, 35:45] = 0  # a dark "1" on white paper
    Image.fromarray(canvas).save(png)
    return runs, png
