"""Using a model writes nothing outside the folders the user names: no telemetry, no
device ID, no session files. Each command runs as a real process with a fresh, empty
``HOME``, ``TMPDIR`` and working folder, and without ``ORT_DISABLE_TELEMETRY`` in its
environment (a user who never heard of it); afterwards those folders must hold nothing
but the caches docs/reliability.md names.

The control: with ``ORT_DISABLE_TELEMETRY=0`` set by the user, ONNX Runtime does write
its device ID, so the probe sees such files, and a user's own setting is kept."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.processes import cli_env

pytestmark = pytest.mark.slow  # every test here needs the trained cnn

# Caches that docs/reliability.md names (relative to the fresh HOME or TMPDIR): matplotlib's
# font list and config folder, written by the commands that draw PNGs, and the empty
# cache folder torch makes the first time it loads torch._dynamo.
DOCUMENTED_CACHES = (".cache/matplotlib", ".config/matplotlib", "torchinductor_")
# ONNX Runtime sends nothing and writes no device ID when it sees a CI runner (CI=true
# gave 0 files where a user's shell gave 3): the probe must run as a user's shell would
CI_MARKS = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "TF_BUILD", "JENKINS_URL", "BUILDKITE", "TRAVIS")


class Fresh:
    """A fresh HOME, TMPDIR and working folder, and the environment that points at them."""

    def __init__(self, root: Path, mnist_dir: Path, **extra: str) -> None:
        self.home, self.tmp, self.cwd = (root / n for n in ("home", "tmp", "cwd"))
        for d in (self.home, self.tmp, self.cwd):
            d.mkdir(parents=True)
        env = cli_env(mnist_dir)
        for name in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR"):
            env.pop(name, None)
        for name in CI_MARKS:  # a user's machine, not a CI runner's
            env.pop(name, None)
        self.env = env | {"HOME": str(self.home), "TMPDIR": str(self.tmp)} | extra

    def run(self, *args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "mnistlab", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    def written(self) -> list[str]:
        """The files (and empty folders) now in the fresh folders, but the documented
        caches; torch's folder only ever appears empty here, so a file in it counts."""
        found = []
        for base in (self.home, self.tmp, self.cwd):
            for p in sorted(base.rglob("*")):
                rel = p.relative_to(base).as_posix()
                if p.is_dir() and any(p.iterdir()):
                    continue  # a folder counts through what it holds
                cache = any(rel.startswith(c) for c in DOCUMENTED_CACHES)
                if cache and not (rel.startswith("torchinductor_") and p.is_file()):
                    continue
                found.append(f"{base.name}/{rel}")
        return found


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory, mnist) -> Path:
    """A real MNIST test digit as dark ink on white paper, 112x112."""
    a = 255 - mnist.test[0][0, 0].numpy()
    path = tmp_path_factory.mktemp("digit") / "digit.png"
    Image.fromarray(np.kron(a, np.ones((4, 4), np.uint8))).save(path)
    return path


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory, trained_run, mnist_dir) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    env = cli_env(mnist_dir)
    cmd = [sys.executable, "-m", "mnistlab", "export", str(trained_run), "-o", str(out)]
    subprocess.run([*cmd, "--format", "onnx"], check=True, env=env, capture_output=True)
    return out


def test_the_probe_sees_onnxruntime_telemetry_when_the_user_allows_it(
    tmp_path, mnist_dir, onnx_file, digit_png
):
    fresh = Fresh(tmp_path, mnist_dir, ORT_DISABLE_TELEMETRY="0")
    fresh.run("predict", str(onnx_file), str(digit_png))
    assert any("onnxruntime" in f for f in fresh.written()), fresh.written()


@pytest.mark.parametrize(
    "what",
    ["predict-onnx", "predict-run-number", "predict-show", "export", "evaluate", "ensemble"],
)
def test_a_command_writes_only_where_it_is_told(
    what, tmp_path, mnist_dir, trained_run, onnx_file, digit_png
):
    fresh = Fresh(tmp_path / "fresh", mnist_dir)
    out = tmp_path / "out"  # the one folder the user names
    out.mkdir()
    args = {
        "predict-onnx": ["predict", str(onnx_file), str(digit_png), "--json"],
        "predict-run-number": ["predict", str(trained_run), str(digit_png), "--number"],
        "predict-show": ["predict", str(trained_run), str(digit_png), "--show", str(out / "s.png")],
        "export": ["export", str(trained_run), "--format", "onnx", "-o", str(out / "m.onnx")],
        "evaluate": ["evaluate", str(trained_run), "--out", str(out / "eval")],
        "ensemble": ["ensemble", *map(str, _members(tmp_path)), "-o", f"{out}/e"],
    }[what]
    fresh.run(*args)
    assert fresh.written() == []
    if what not in ("predict-onnx", "predict-run-number"):
        assert any(out.iterdir())  # it did write, where it was told


def _members(tmp_path: Path) -> list[Path]:
    """Two members for an ensemble: untrained ``linear`` models saved as runs, the
    cheapest an ensemble takes (what it writes, and where, does not depend on them)."""
    import torch

    from mnistlab import create_model, save_checkpoint

    runs = []
    for seed in (0, 1):
        run = tmp_path / f"member{seed}"
        run.mkdir()
        torch.manual_seed(seed)
        save_checkpoint(run / "best", create_model("linear"), {})
        runs.append(run)
    return runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_server_writes_nothing(workers, tmp_path, mnist_dir, trained_run, digit_png):
    fresh = Fresh(tmp_path, mnist_dir)
    port = _free_port()
    cmd = ["serve", str(trained_run), "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnistlab", *cmd],
        cwd=fresh.cwd,
        env=fresh.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a loaded 2-core machine starts workers slowly
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                urllib.request.urlopen(url + "/readyz", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        png = digit_png.read_bytes()
        for path in ("/api/predict", "/api/read") * workers:  # reach every worker
            req = urllib.request.Request(url + path, png, {"Content-Type": "image/png"})
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert fresh.written() == []


def test_a_users_own_onnxruntime_setting_is_kept(tmp_path, mnist_dir):
    code = "import os, mnistlab; print(os.environ['ORT_DISABLE_TELEMETRY'])"
    env = Fresh(tmp_path, mnist_dir, ORT_DISABLE_TELEMETRY="0").env
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "0"
    env.pop("ORT_DISABLE_TELEMETRY")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "1"
