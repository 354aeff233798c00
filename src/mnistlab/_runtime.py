"""Where code runs: picking the device, and tuning the CPU allocator for training.

``pick_device`` turns "auto", "cpu", "cuda" or "mps" into a ``torch.device`` that
is really available. ``keep_freed_memory`` keeps glibc from handing training's big
activation buffers back to the OS every step. By default glibc serves blocks
above a (moving) threshold with ``mmap`` and trims the heap top after frees, so a
CPU training step can pay fresh page faults for its largest activations on every
step. Which blocks that hits depends on what ran earlier in the process, which
made the same epoch 1.2-1.5x slower after other shapes had run. Raising the
thresholds makes the heap keep that memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

from .errors import UsageError

__all__ = ["keep_freed_memory", "pick_device"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_done = False


def keep_freed_memory() -> bool:
    """Tune glibc malloc once per process; returns whether it applied (Linux/glibc only)."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False
    # 32 MiB is the largest mmap threshold glibc accepts; a (256, 16, 24, 24) fp32
    # activation is 9.4 MiB. The trim threshold and top pad keep 1 GiB / 256 MiB.
    _done = all(
        mallopt(opt, value) == 1
        for opt, value in (
            (_M_MMAP_THRESHOLD, 1 << 25),
            (_M_TRIM_THRESHOLD, 1 << 30),
            (_M_TOP_PAD, 1 << 28),
        )
    )
    return _done


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for "auto"; an explicit device must be available."""
    has_mps = getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(
            f"{name!r} is not a device; use auto, cpu, cuda or mps", option="device"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("cuda: CUDA is not available here; use auto or cpu", option="device")
    if dev.type == "mps" and not has_mps:
        raise UsageError("mps: MPS is not available here; use auto or cpu", option="device")
    return dev
