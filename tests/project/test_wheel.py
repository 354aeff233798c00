"""The release as a user installs it: ``python -m build`` makes a wheel and an sdist, and
the wheel goes into a fresh virtual environment with ``pip install 'mnistlab[web]'``
and nothing else (the small install a deployer makes). It has no torch, and it still
says its version, predicts, reads numbers and serves a trained run, its page included
(package data that only a wheel install would miss); what needs torch says so in one
line.

The wheels of the dependencies come from ``make wheelhouse`` (PyPI, once): the test
itself never needs the network. Without them it is skipped, and says how to get them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnistlab._version import __version__
from tests.support.images import png, row_png
from tests.support.processes import REPO, cli_env

pytestmark = pytest.mark.slow  # builds the package and a virtual environment

WHEELHOUSE = Path(os.environ.get("MNISTLAB_WHEELHOUSE", REPO / ".venv" / "wheelhouse"))


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The folder ``python -m build`` wrote the wheel and the sdist into, built offline
    from a copy of the project (so that building leaves nothing in the checkout)."""
    root = tmp_path_factory.mktemp("dist")
    project = root / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
        shutil.copy(REPO / name, project)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", project / "src", ignore=ignore)
    out = root / "dist"
    # --no-isolation: this environment's setuptools, no download
    cmd = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(project)]
    built = _run(cmd)
    assert built.returncode == 0, built.stdout + built.stderr
    return out


@pytest.fixture(scope="module")
def small(dist, tmp_path_factory) -> Path:
    """The bin folder of a fresh venv holding mnistlab[web]: the built wheel, and its
    dependencies from the wheelhouse."""
    if not (WHEELHOUSE / ".done").is_file():
        pytest.skip(f"no wheels in {WHEELHOUSE}: run `make wheelhouse` once (needs PyPI)")
    venv = tmp_path_factory.mktemp("small") / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    quiet = ["--disable-pip-version-check", "--quiet", "--no-index"]
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", *quiet]
    links = ["--find-links", str(WHEELHOUSE), "--find-links", str(dist)]
    done = _run([*pip, *links, "mnistlab[web]"])
    assert done.returncode == 0, done.stderr
    return venv / "bin"


def test_build_makes_a_wheel_and_an_sdist_of_this_version(dist):
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    assert wheel.name == f"mnistlab-{__version__}-py3-none-any.whl"
    assert sdist.name == f"mnistlab-{__version__}.tar.gz"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "mnistlab/serve/web/static/index.html" in names  # the page, as package data
    # the outlier sets a training loads instead of drawing them again
    assert {f"mnistlab/data/outlier_sets/{s}.npz.xz" for s in ("train", "val")} <= set(names)
    assert f"mnistlab-{__version__}.dist-info/licenses/LICENSE" in names
    with tarfile.open(sdist) as t:
        members = {m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name}
    assert {"LICENSE", "README.md", "pyproject.toml"} <= members
    assert "src/mnistlab/serve/web/static/index.html" in members
    assert "src/mnistlab/data/outlier_sets/val.npz.xz" in members


def test_the_installed_wheel_says_its_version(small):
    proc = _run([str(small / "mnistlab"), "--version"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["mnistlab", __version__]


def test_the_small_install_has_no_torch(small):
    for module in ("torch", "matplotlib", "safetensors", "onnx"):
        proc = _run([str(small / "python"), "-c", f"import {module}"])
        assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr, module


def test_the_small_install_predicts_and_reads_numbers(small, trained_run, mnist, tmp_path):
    digits = mnist.test[0][:4, 0].numpy()
    labels = "".join(str(int(v)) for v in mnist.test[1][:4])
    (tmp_path / "one.png").write_bytes(png(digits[0]))
    (tmp_path / "row.png").write_bytes(row_png(list(digits)))
    mnistlab = str(small / "mnistlab")
    env = cli_env(trained_run.parent)
    for model in (trained_run, trained_run / "best.onnx"):
        proc = _run([mnistlab, "predict", str(model), str(tmp_path / "one.png"), "--json"], env=env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)[0]["label"] == labels[0]
    proc = _run(
        [mnistlab, "predict", "--number", str(trained_run), str(tmp_path / "row.png"), "--json"],
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["number"] == labels
    show = tmp_path / "show.png"
    one = [str(trained_run), str(tmp_path / "one.png")]
    proc = _run([mnistlab, "predict", *one, "--show", str(show)], env=env)
    assert proc.returncode == 0, proc.stderr
    assert show.read_bytes().startswith(b"\x89PNG")


def test_the_small_install_serves_the_page_and_reads_numbers(small, trained_run, mnist):
    digits = mnist.test[0][:3, 0].numpy()
    labels = "".join(str(int(v)) for v in mnist.test[1][:3])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(small / "mnistlab"), "serve", str(trained_run), "--port", str(port)]
    server = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(trained_run.parent),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                    assert json.load(r)["backend"] == "onnxruntime"
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            assert b"<canvas" in r.read()  # the drawing page, from the installed package data
        bodies = {"/api/predict": png(digits[0]), "/api/read": row_png(list(digits))}
        answers = {}
        for path, body in bodies.items():
            req = urllib.request.Request(
                url + path, data=body, headers={"Content-Type": "image/png"}
            )
            with urllib.request.urlopen(req, timeout=30) as r:
                answers[path] = json.load(r)
    finally:
        server.terminate()
        server.communicate(timeout=60)
    assert answers["/api/predict"]["label"] == labels[0]
    assert answers["/api/read"]["number"] == labels


@pytest.mark.parametrize(
    "args, needs",
    [
        (["train", "--preset", "fast"], "torch"),
        (["export", "RUN"], "torch"),
        (["predict", "--tta", "RUN", "IMAGE"], "PyTorch"),
        (["predict", "--backend", "torch", "RUN", "IMAGE"], "PyTorch"),
    ],
)
def test_what_needs_torch_says_what_to_install(small, trained_run, tmp_path, args, needs):
    (tmp_path / "d.png").write_bytes(png(np.zeros((28, 28), np.uint8)))
    args = [{"RUN": str(trained_run), "IMAGE": str(tmp_path / "d.png")}.get(a, a) for a in args]
    proc = _run([str(small / "mnistlab"), *args], env=cli_env(trained_run.parent), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert needs in line and "pip install 'mnistlab[train]'" in line
