"""`mnistlab train --nproc N` leaves nothing behind: no orphan rank when the launcher is
killed outright, no torchelastic folder in $TMPDIR when it ends.

Real launchers, real ranks, a real ``kill -9``; the ranks are found and watched by pid
in /proc, the truth the kernel keeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnistlab.runs.folder import is_finished
from tests.support.processes import cli_env

TRAIN = [sys.executable, "-m", "mnistlab", "train", "--nproc", "2"]
# a few minutes of training for 2 ranks: far longer than the test waits for them
LONG = ["--model", "cnn", "--train-subset", "16384", "--augment", "none", "--epochs", "5"]
LONG += ["--batch-size", "64", "--no-channels-last"]

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
pytestmark = pytest.mark.slow  # each test launches torchrun: two ranks and a launcher


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()  # [state, ppid, ...]


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # a zombie has ended


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[1] == str(pid):
            found.append(int(entry.name))
    return found


@linux_only
def test_killing_the_launcher_with_sigkill_kills_its_ranks(tmp_path, mnist_dir):
    launcher = subprocess.Popen(
        [*TRAIN, *LONG, "--out-dir", "runs", "--name", "cut"],
        cwd=tmp_path,
        env={**cli_env(mnist_dir), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ranks: list[int] = []
    try:
        # rank 0 writes config.json once both ranks have set up: they are training
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and launcher.poll() is None:
            if (tmp_path / "runs" / "cut" / "config.json").is_file():
                break
            time.sleep(0.1)
        ranks = _children(launcher.pid)
        assert len(ranks) == 2 and all(map(_alive, ranks)), "the ranks never started"
        launcher.kill()  # kill -9: the launcher can tell nobody
        launcher.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(map(_alive, ranks)):
            time.sleep(0.1)
        assert [pid for pid in ranks if _alive(pid)] == []
        assert not is_finished(tmp_path / "runs" / "cut")
    finally:  # an orphan left by a failure must not train on for minutes
        for pid in ranks:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_launched_run_leaves_no_folder_in_tmpdir(tmp_path, mnist_dir):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.run(
        [*TRAIN, "--model", "cnn", "--train-subset", "512", "--dry-run", "--out-dir", "runs"],
        cwd=tmp_path,
        env={**cli_env(mnist_dir), "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    # torch's compile cache (one per user, for all runs; one process makes it too) stays
    left = [p.name for p in tmp.iterdir() if not p.name.startswith("torchinductor_")]
    assert left == []
