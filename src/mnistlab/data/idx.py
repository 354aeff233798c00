"""Reading and writing IDX files, the format MNIST and Fashion-MNIST ship in.

Layout (big-endian): two zero bytes, a dtype code, the number of dimensions, one
uint32 per dimension, then the data. Files may be gzip-compressed; we tell by the
gzip magic bytes rather than by the file name, so a decompressed copy called
``*.gz`` (or a compressed one without the suffix) still reads.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .._io import atomic_write_bytes
from ..errors import MnistlabError

__all__ = ["IdxError", "decode_idx", "read_idx", "read_idx_bytes", "write_idx"]

# dtype code -> numpy dtype, big-endian as the format specifies
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
# No real IDX file has more dimensions than this; a larger count means a corrupt header.
_MAX_DIMS = 8


class IdxError(MnistlabError):
    """A malformed IDX file. The message names the file and the problem."""


def read_idx_bytes(path: str | os.PathLike) -> bytes:
    """Return the decoded (decompressed if need be) bytes of an IDX file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IdxError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise IdxError(f"{path}: is a directory, expected an IDX file") from None
    except OSError as e:
        raise IdxError(f"{path}: cannot read ({e.strerror}); check its permissions") from None
    if not raw:
        raise IdxError(f"{path}: empty file; delete it and download or copy it again")
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise IdxError(
                f"{path}: not a valid gzip file ({e}); delete it and download or copy it again"
            ) from None
    return raw


def decode_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse decoded IDX bytes into a native-endian numpy array, checking every field."""
    if len(data) < 4:
        raise IdxError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise IdxError(
            f"{name}: bad magic number 0x{data[:4].hex()} (an IDX file starts with 0x0000); "
            "it is not an IDX file"
        )
    if code not in _DTYPES:
        raise IdxError(f"{name}: unknown IDX dtype code 0x{code:02x}")
    if not 1 <= ndim <= _MAX_DIMS:
        raise IdxError(f"{name}: bad number of dimensions {ndim} in the IDX header")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name}: truncated header ({len(data)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[code]
    # numpy refuses a shape whose non-zero sides multiply past its index range even when
    # another side is 0 (an empty array), so such a header is corrupt whatever follows it
    if math.prod(d for d in dims if d) * dtype.itemsize > np.iinfo(np.intp).max:
        raise IdxError(f"{name}: bad IDX header: shape {tuple(dims)} is too big for any array")
    expected = math.prod(dims) * dtype.itemsize  # Python ints: a huge header cannot overflow
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise IdxError(
            f"{name}: {what}: shape {tuple(dims)} needs {expected} data bytes, found {found}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a raw or gzipped IDX file into a numpy array."""
    return decode_idx(read_idx_bytes(path), str(path))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as IDX, gzipped if ``compress`` (default: the name ends in .gz).

    The file is written to a temporary name and renamed, so a reader never sees half of it.
    """
    path = Path(path)
    arr = np.asarray(array)
    native = arr.dtype.newbyteorder("=")
    if native not in _CODES:
        raise IdxError(f"{path}: dtype {arr.dtype} cannot be stored in IDX")
    if not 1 <= arr.ndim <= _MAX_DIMS:
        raise IdxError(f"{path}: IDX stores 1 to {_MAX_DIMS} dimensions, got {arr.ndim}")
    code = _CODES[native]
    body = struct.pack(f">HBB{arr.ndim}I", 0, code, arr.ndim, *arr.shape)
    body += np.ascontiguousarray(arr, dtype=_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        body = gzip.compress(body, compresslevel=6, mtime=0)
    atomic_write_bytes(path, body)
    return path
