"""Fuzz the IDX reader: ``decode_idx`` on any bytes, and ``read_idx`` on gzipped ones.

    python fuzz/fuzz_idx.py -max_total_time=60      # libFuzzer flags; see docs/reliability.md

Every input goes to ``decode_idx``. An input that starts with gzip's magic bytes is
also written to a file and read with ``read_idx``, the path that decompresses (the
only one that does: there is no bytes-level gzip helper), as a downloaded file would
be. A successful decode must agree with the header it came from.
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
from _harness import expect_own_error, instrumented, main

with instrumented(__name__, "mnistlab"):
    from mnistlab.data.idx import IdxError, decode_idx, read_idx

# An in-memory file (Linux) for the gzipped inputs: nothing written to disk per input,
# nothing left behind, as libFuzzer exits without running Python's clean-up.
if hasattr(os, "memfd_create"):
    _FD = os.memfd_create("fuzz-idx")
    _FILE = Path(f"/proc/self/fd/{_FD}")
else:
    _FD, _name = tempfile.mkstemp(prefix="fuzz-idx-", suffix=".gz")
    _FILE = Path(_name)


def _as_file(data: bytes) -> Path:
    os.ftruncate(_FD, 0)
    os.pwrite(_FD, data, 0)
    return _FILE


def check(data: bytes) -> None:
    """Decode ``data``; only an ``IdxError`` may escape, and a decoded array must have
    the header's shape and all the data bytes."""
    try:
        arr = decode_idx(data, "fuzz")
    except IdxError as e:
        expect_own_error(e)
    else:
        ndim = data[3]
        dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        assert arr.shape == dims and arr.dtype.isnative, (arr.shape, arr.dtype)
        assert arr.nbytes == len(data) - 4 - 4 * ndim
    if data[:2] == b"\x1f\x8b":
        try:
            read_idx(_as_file(data))
        except IdxError as e:
            expect_own_error(e)


def _idx(arr: np.ndarray) -> bytes:
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    code = codes[arr.dtype.str[1:]]
    head = struct.pack(f">HBB{arr.ndim}I", 0, code, arr.ndim, *arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def seeds() -> list[bytes]:
    """Small valid IDX files of every dtype and 1 to 4 dimensions, raw and gzipped,
    MNIST's own two layouts among them (labels: 1-D uint8; images: N x 28 x 28)."""
    rng = np.random.default_rng(0)
    arrays = [
        np.arange(10, dtype=np.uint8),  # labels
        rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),  # images
        np.arange(-4, 4, dtype=np.int8).reshape(2, 4),
        np.arange(6, dtype=np.int16).reshape(1, 2, 3),
        np.arange(4, dtype=np.int32),
        np.linspace(0, 1, 6, dtype=np.float32).reshape(3, 2),
        np.array([0.5, -1e300, np.inf], dtype=np.float64),
        np.zeros((1, 1, 1, 2), dtype=np.uint8),
        np.zeros((0, 3), dtype=np.uint8),  # an empty array is valid IDX
    ]
    raw = [_idx(a) for a in arrays]
    return raw + [gzip.compress(r, mtime=0) for r in raw]


if __name__ == "__main__":
    main("idx", check, seeds)
