"""A torchrun rank dies with the process that launched it.

torchrun (or ``mnistlab train --nproc``, which runs torchrun's agent in process)
starts the ranks as its children. If that launcher is killed outright (``kill -9``,
the OOM killer, a closed terminal's SIGKILL), nothing passes the news on: the ranks
would train on as orphans, hold the cores, and finish and write a run folder
that nobody asked for any more. Each rank therefore ties its life to its parent's.

On Linux the kernel does it: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` has the rank killed
the moment its parent dies. Elsewhere (macOS has no such call) a daemon thread
polls the parent's pid twice a second. SIGKILL rather than SIGTERM because the
ranks cannot finish a step without each other, and a rank blocked in a collective
would not run a Python signal handler before gloo's 30-minute timeout; the run
folder is left as a ``kill -9`` of one process leaves it, resumable from its last
saved epoch.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

__all__ = ["LAUNCHER_PID", "die_with_launcher"]

# set by `mnistlab train --nproc` for its ranks: the pid they must be the children of
LAUNCHER_PID = "MNISTLAB_LAUNCHER_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_POLL_SECONDS = 0.5
_armed = False


def die_with_launcher() -> None:
    """Kill this process when its parent (the launcher) dies; once per process.

    A no-op outside torchrun (no ``TORCHELASTIC_RUN_ID``): a plain ``mnistlab
    train`` outlives a shell that exits, as any command does.
    """
    global _armed
    if _armed or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    _armed = True
    parent = os.getppid()
    if not _kernel_kills_orphan():
        threading.Thread(target=_watch, args=(parent,), daemon=True, name="lifeline").start()
    # The launcher may have died before the line above: the kernel will not tell us then.
    # (No test of pid 1: torchrun is pid 1 in many containers.)
    expected = os.environ.get(LAUNCHER_PID)
    if os.getppid() != parent or (expected and expected != str(parent)):
        _die()


def _kernel_kills_orphan() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc with prctl (e.g. a static musl build)
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_POLL_SECONDS)
    _die()


def _die() -> None:
    # Windows has no SIGKILL; its os.kill(SIGTERM) is TerminateProcess, as abrupt
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
