"""IDX files: exact round trips, the header bytes on disk, and every malformed input."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from mnistlab.data.idx import IdxError, decode_idx, read_idx, write_idx


def _ls(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden temp files included."""
    return sorted(os.listdir(folder))


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    f32 = rng.standard_normal((5, 7)).astype(np.float32)
    f32.flat[:6] = [np.inf, -np.inf, np.nan, -0.0, np.finfo(np.float32).tiny, 3.4e38]
    i32 = rng.integers(-(2**31), 2**31, size=(4, 3, 2), dtype=np.int32)
    i32.flat[:3] = [-(2**31), 2**31 - 1, -1]
    return {
        "uint8-3d": rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8),
        "int32": i32,
        "float32": f32,
        "int8": np.array([-128, -1, 0, 127], dtype=np.int8),
        "int16": np.array([[-32768, 32767], [0, -2]], dtype=np.int16),
        "float64": np.array([1e-300, -2.5, np.pi], dtype=np.float64),
    }


ARRAYS = _arrays()


@pytest.mark.parametrize("kind", list(ARRAYS))
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_is_exact(tmp_path, kind, suffix):
    arr = ARRAYS[kind]
    path = tmp_path / f"a-idx{suffix}"
    assert write_idx(path, arr) == path
    raw = path.read_bytes()
    # compressed exactly when the name ends in .gz
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    out = read_idx(path)
    assert out.dtype == arr.dtype
    assert out.dtype.isnative
    assert out.shape == arr.shape
    # byte-for-byte: nan payloads, -0.0 and extremes survive
    assert out.tobytes() == arr.tobytes()
    assert _ls(tmp_path) == [path.name]


@pytest.mark.parametrize(
    ("compress", "name", "gz"),
    [(True, "plain-name", True), (False, "named.gz", False), (None, "x.gz", True)],
)
def test_compress_flag_overrides_the_name_and_reading_sniffs_the_magic(
    tmp_path, compress, name, gz
):
    arr = ARRAYS["uint8-3d"]
    path = write_idx(tmp_path / name, arr, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") is gz
    assert read_idx(path).tobytes() == arr.tobytes()


def test_header_bytes_uint8_match_hand_built_header(tmp_path):
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    expected = (
        b"\x00\x00"  # magic: two zero bytes
        b"\x08"  # dtype code: unsigned byte
        b"\x02"  # two dimensions
        b"\x00\x00\x00\x02"  # dim 0 = 2, big-endian uint32
        b"\x00\x00\x00\x03"  # dim 1 = 3
        b"\x00\x01\x02\x03\x04\x05"
    )
    assert expected == struct.pack(">BBBBII", 0, 0, 8, 2, 2, 3) + bytes(range(6))
    write_idx(tmp_path / "raw", arr)
    assert (tmp_path / "raw").read_bytes() == expected
    write_idx(tmp_path / "c.gz", arr)
    assert gzip.decompress((tmp_path / "c.gz").read_bytes()) == expected


def test_header_and_data_int32_and_float32_are_big_endian(tmp_path):
    write_idx(tmp_path / "i", np.array([1, -2], dtype=np.int32))
    assert (tmp_path / "i").read_bytes() == (
        b"\x00\x00\x0c\x01" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x01" + b"\xff\xff\xff\xfe"
    )
    write_idx(tmp_path / "f", np.array([[1.0], [-2.0]], dtype=np.float32))
    assert (tmp_path / "f").read_bytes() == (
        b"\x00\x00\x0d\x02"
        + struct.pack(">II", 2, 1)
        + b"\x3f\x80\x00\x00"  # 1.0
        + b"\xc0\x00\x00\x00"  # -2.0
    )


def test_big_endian_input_is_written_like_native(tmp_path):
    arr = np.array([[1, -7, 300]], dtype=np.int32)
    write_idx(tmp_path / "n", arr)
    write_idx(tmp_path / "b", arr.astype(">i4"))
    assert (tmp_path / "n").read_bytes() == (tmp_path / "b").read_bytes()
    np.testing.assert_array_equal(read_idx(tmp_path / "b"), arr)


def test_decode_hand_built_bytes():
    data = struct.pack(">HBB2I", 0, 0x0B, 2, 1, 2) + struct.pack(">2h", -3, 500)
    out = decode_idx(data)
    assert out.dtype == np.dtype(np.int16)
    assert out.tolist() == [[-3, 500]]


# ---------------------------------------------------------------- malformed files

_GOOD = struct.pack(">HBB2I", 0, 8, 2, 3, 4) + bytes(range(12))


def _bad_cases() -> dict[str, tuple[bytes, list[str]]]:
    valid_gz = gzip.compress(_GOOD + bytes(2000), mtime=0)
    return {
        "bad-magic": (b"\x01\x02\x08\x02" + _GOOD[4:], ["bad magic", "0x01020802"]),
        "bad-magic-text": (b"hello, this is not idx", ["bad magic", "not an IDX file"]),
        "truncated-end": (_GOOD[:-5], ["truncated", "(3, 4)", "12", "found 7"]),
        "truncated-gz-content": (gzip.compress(_GOOD[:-1]), ["truncated", "found 11"]),
        "dims-larger-than-data": (
            struct.pack(">HBB2I", 0, 8, 2, 5, 5) + bytes(12),
            ["truncated", "(5, 5)", "25", "found 12"],
        ),
        "trailing-bytes": (_GOOD + b"\x00\x00\x00", ["trailing bytes", "(3, 4)", "found 15"]),
        "int32-not-multiple": (
            struct.pack(">HBB1I", 0, 0x0C, 1, 2) + bytes(6),
            ["truncated", "(2,)", "8", "found 6"],
        ),
        "empty": (b"", ["empty file"]),
        "bad-gzip-garbage": (b"\x1f\x8b" + b"this is not deflate data" * 4, ["not a valid gzip"]),
        "bad-gzip-truncated": (valid_gz[: len(valid_gz) // 2], ["not a valid gzip"]),
        "bad-gzip-crc": (valid_gz[:-8] + b"\x00\x00\x00\x00" + valid_gz[-4:], ["gzip"]),
        "unknown-dtype": (b"\x00\x00\x0a\x01" + struct.pack(">I", 1) + b"\x00", ["dtype", "0x0a"]),
        "zero-dims": (b"\x00\x00\x08\x00", ["number of dimensions 0"]),
        "too-many-dims": (b"\x00\x00\x08\x09" + bytes(36), ["number of dimensions 9"]),
        "short-header": (b"\x00\x00\x08", ["too short"]),
        "header-cut": (b"\x00\x00\x08\x03" + struct.pack(">I", 1), ["truncated header"]),
    }


BAD = _bad_cases()


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_file_gives_idx_error_naming_file_and_problem(tmp_path, case):
    data, words = BAD[case]
    path = tmp_path / f"{case}-idx3-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(IdxError) as exc:
        read_idx(path)
    msg = str(exc.value)
    assert str(path) in msg
    for word in words:
        assert word in msg, (word, msg)
    assert "\n" not in msg


def test_bad_gzip_error_hides_no_traceback_chain(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"\x1f\x8b" + b"\xff" * 40)
    with pytest.raises(IdxError) as exc:
        read_idx(path)
    assert exc.value.__suppress_context__  # raised `from None`


def test_decode_names_the_given_name():
    with pytest.raises(IdxError, match=r"^my-file: bad magic"):
        decode_idx(b"\x07\x00\x08\x01\x00\x00\x00\x00", "my-file")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(IdxError, match="file not found") as exc:
        read_idx(tmp_path / "nope.gz")
    assert str(tmp_path / "nope.gz") in str(exc.value)
    with pytest.raises(IdxError, match="is a directory"):
        read_idx(tmp_path)


def test_header_whose_size_overflows_gives_idx_error(tmp_path):
    path = tmp_path / "overflow"
    path.write_bytes(struct.pack(">HBB4I", 0, 8, 4, 65536, 65536, 65536, 65536))
    with pytest.raises(IdxError, match=str(path)):
        read_idx(path)


# ------------------------------------------------------------------- writing


def test_write_leaves_no_temp_files_and_overwrites(tmp_path):
    a = np.zeros((3, 2), dtype=np.uint8)
    b = np.full((4,), 7, dtype=np.uint8)
    write_idx(tmp_path / "x.gz", a)
    write_idx(tmp_path / "x.gz", b)
    write_idx(tmp_path / "y", a)
    assert _ls(tmp_path) == ["x.gz", "y"]
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), b)


def test_write_creates_missing_parent(tmp_path):
    path = write_idx(tmp_path / "sub" / "deeper" / "z.gz", np.ones(3, np.uint8))
    assert read_idx(path).tolist() == [1, 1, 1]
    assert _ls(path.parent) == ["z.gz"]


@pytest.mark.parametrize(
    "arr",
    [np.zeros(3, dtype=np.int64), np.zeros(2, dtype=np.uint16), np.array(5, dtype=np.uint8)],
    ids=["int64", "uint16", "0-d"],
)
def test_write_rejects_unstorable_arrays_and_writes_nothing(tmp_path, arr):
    with pytest.raises(IdxError, match="bad-idx"):
        write_idx(tmp_path / "bad-idx", arr)
    assert _ls(tmp_path) == []


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    old = np.arange(10, dtype=np.uint8)
    path = write_idx(tmp_path / "keep.gz", old)
    before = path.read_bytes()

    def half_then_fail(self, data):
        with open(self, "wb") as fh:
            fh.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(Path, "write_bytes", half_then_fail)
        with pytest.raises(OSError, match="No space"):
            write_idx(path, np.arange(100, dtype=np.uint8))
    assert _ls(tmp_path) == ["keep.gz"]
    assert path.read_bytes() == before
    np.testing.assert_array_equal(read_idx(path), old)


# fuzz_idx's first find: 8 dimensions, some 0 (an empty array, so the size check passed)
# and the others multiplying past 2**63, which numpy's reshape refused with ValueError
IDX_OVERFLOWING_EMPTY = (
    b"\x00\x00\x08\x08\x02\x00\x00\x00\x00\x00\x00\x00\x08\x02\x00\x00\x00\x00"
    b"\x00\x00\x00\x08\x02\x00\x00\x00\x00\x00\x00\x03\x00\x00\x01\x00\x00\x03"
)


def _header(*dims: int) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    "data",
    [IDX_OVERFLOWING_EMPTY, _header(0, 2**32 - 1, 2**32 - 1, 2**32 - 1)],
    ids=["found", "readable"],
)
def test_an_empty_idx_shape_too_big_for_numpy_is_an_idx_error(data):
    with pytest.raises(IdxError, match="too big for any array"):
        decode_idx(data, "odd.idx")


def test_empty_idx_arrays_numpy_can_hold_still_read():
    # the new check refuses only what numpy cannot make: these are valid, empty
    assert decode_idx(_header(0, 2**31), "x").shape == (0, 2**31)
    assert decode_idx(_header(5, 0, 2**32 - 1), "x").shape == (5, 0, 2**32 - 1)
