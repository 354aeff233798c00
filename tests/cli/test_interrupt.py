"""Ctrl-C at any moment of a command's start is one line and exit status 130, never a
traceback or a swallowed interrupt: real subprocesses, a real SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.cli import one_line
from tests.support.processes import cli_env


def _startup_seconds() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t


def _interrupt(cmd: list[str], delay: float, env: dict) -> tuple[int, str, str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _digit_folder(folder: Path, n: int) -> Path:
    """``n`` copies of a drawn 1 as PNGs: enough that predict outlasts the latest moment."""
    if not folder.is_dir():
        folder.mkdir()
        one = np.full((56, 56), 255, np.uint8)
        one[8:48, 26:31] = 0
        for i in range(n):
            Image.fromarray(one).save(folder / f"{i:03d}.png")
    return folder


def _check_interrupted(rc: int, out: str, err: str, delay: float) -> None:
    assert "Traceback" not in err + out and "unexpected" not in err, (delay, err)
    if rc == 0:  # finished before the signal came: fine only for the latest moments
        assert delay >= 1.0, (delay, out, err)
        return
    assert rc == 130, (delay, rc, out, err)  # never swallowed, never a crash
    if err.strip():
        assert one_line(err) == "error: interrupted", (delay, err)
    else:  # training had started: it stopped after a step and said so
        assert "interrupted at epoch" in out, (delay, out)


@pytest.mark.slow
@pytest.mark.parametrize(
    "entry,command",
    [("module", "train"), ("script", "train"), ("module", "evaluate"), ("module", "predict")],
)
def test_ctrl_c_early_is_one_line_and_exit_130(entry, command, tmp_path, mnist_dir, request):
    if entry == "module":
        cmd = [sys.executable, "-m", "mnistlab"]
    else:
        script = Path(sys.executable).parent / "mnistlab"
        if not script.is_file():
            pytest.skip(f"no console script at {script}")
        cmd = [str(script)]
    base = _startup_seconds()  # the moments count from a running interpreter
    for i, moment in enumerate((0.05, 0.2, 0.5, 1.0)):
        out_dir = tmp_path / f"out{i}"
        if command == "train":
            args = ["train", "--model", "mlp-small", "--dry-run", "--train-subset", "500"]
            args += ["--out-dir", str(out_dir), "--device", "cpu"]
        elif command == "predict":  # torch-free: what it loads is loaded before it starts
            run = request.getfixturevalue("tiny_run")
            args = ["predict", str(run), str(_digit_folder(tmp_path / "digits", 400))]
        else:
            run = request.getfixturevalue("tiny_run")
            args = ["evaluate", str(run), "--out", str(out_dir), "--device", "cpu"]
        for _ in range(3):
            rc, out, err = _interrupt([*cmd, *args], base + moment, cli_env(mnist_dir))
            if not (rc == -signal.SIGINT and out == err == ""):
                break
            # killed silently by the default action: the signal came before the
            # interpreter had started (a busy machine); that moment tested nothing
            base = _startup_seconds()
        _check_interrupted(rc, out, err, moment)
