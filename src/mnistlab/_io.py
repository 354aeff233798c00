"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import UsageError

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "output_file",
    "output_folder",
]


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp_path)`` on a temp file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # it names the temp file; the folder is what cannot be written
        raise _naming(e, path.parent) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        if e.filename in (None, str(tmp_path)) or e.filename2 == str(path):
            raise _naming(e, path) from None  # the file the user asked for, not the temp
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def _naming(e: OSError, path: Path) -> OSError:
    """``e`` again (same errno, so the same class) but about ``path``."""
    if e.errno is None:
        return e
    return OSError(e.errno, e.strerror or os.strerror(e.errno), str(path))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_json(path: str | os.PathLike, obj: object) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def output_file(
    path: str | os.PathLike,
    suffixes: tuple[str, ...],
    inputs: Iterable[str | os.PathLike] = (),
    option: str | None = None,
) -> Path:
    """``path`` checked as a file to write: its extension one of ``suffixes`` (what is
    written, e.g. ``(".png",)``), not a folder, and not one of ``inputs`` (an output
    never overwrites what it was made from). A ``UsageError`` about ``option`` says
    which rule it breaks and what to do; nothing has been written then."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise UsageError(f"needs a file name, got {str(path)!r}", option=option)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name in it", option=option)
    if path.suffix.lower() not in suffixes:
        kinds = " or ".join(suffixes)
        raise UsageError(
            f"{path}: this writes {kinds}; give the file that extension", option=option
        )
    for item in inputs:
        if item == "-" or not os.path.exists(item) or not path.exists():
            continue
        if os.path.samefile(path, item):
            raise UsageError(
                f"{path} is also an input and would be overwritten; choose another name",
                option=option,
            )
    return path


def output_folder(path: str | os.PathLike, option: str | None = None) -> Path:
    """``path`` as a folder to write into: created if missing (with its parents) and
    checked by making a temp file in it, so a command fails before its work, not after.
    A file in the way is a ``UsageError`` about ``option``; a folder that cannot be
    created or written is an ``OSError`` naming that folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"{path} is a file, not a folder; give a folder (it is created if missing)",
            option=option,
        )
    path.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise _naming(e, path) from None
    return path
