"""Atomic writes: a reader sees the old result or the new one, never half of one.

A file is written to a temp file beside it, ``.NAME.PID.XXXXXXXX.tmp``, and renamed
into place; a result of several files is built in a temp folder beside it,
``.NAME.partial-PID``, and renamed into place whole. Both names are hidden and carry
the writer's process id: a ``kill -9`` can always leave one behind, so the next
write of the same name (and ``remove_stale_temps`` on a whole folder) removes those
whose writer is no longer running, and leaves a live writer's alone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .errors import UsageError

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "built_folder",
    "output_file",
    "output_folder",
    "remove_stale_temps",
    "staged_files",
]

# what atomic_write and built_folder leave if killed; NAME is the result's file name
_TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp$")
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)$")
# temps of older versions carry no process id: removed once surely abandoned
_LEGACY_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
LEGACY_AGE_S = 24 * 3600


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp_path)`` on a temp file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    try:
        prefix = f".{path.name}.{os.getpid()}."
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
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


def _alive(pid: int) -> bool:
    """Whether process ``pid`` is running (on this machine)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    except OverflowError:  # no such pid can exist
        return False
    return True


def _stale(entry: os.DirEntry, name: str | None) -> bool:
    """Whether ``entry`` is a temp file or partial folder of ours, for ``name`` (any name
    when None), whose writer has stopped."""
    for pattern in (_TEMP_FILE, _PARTIAL):
        m = pattern.match(entry.name)
        if m and (name is None or m["name"] == name):
            return not _alive(int(m["pid"]))
    m = _LEGACY_TEMP.match(entry.name)
    if m and (name is None or m["name"] == name):
        with contextlib.suppress(OSError):
            return time.time() - entry.stat(follow_symlinks=False).st_mtime > LEGACY_AGE_S
    return False


def remove_stale_temps(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove what a killed write left in ``folder`` (only for the result ``name``, or
    for any) and return it. Best effort: a folder that cannot be read or changed is
    left as it is, since the write that follows reports that better."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(".") or not _stale(entry, name):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _temp_folder(path: Path) -> Path:
    """A new empty ``.NAME.partial-PID`` beside ``path``, after removing dead ones."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}"
    if tmp.exists():  # left by this very process (an earlier build that failed)
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
    except OSError as e:  # it names the temp folder; the parent is what cannot be written
        raise _naming(e, path.parent) from None
    return tmp


@contextlib.contextmanager
def built_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A temp folder beside ``path`` to build a result of several files in; renamed to
    ``path`` when the block ends without error (removed when it raises or is
    interrupted). ``path`` must not exist then, or be an empty folder. Nothing is
    ever seen at ``path`` but the finished result."""
    path = Path(path)
    tmp = _temp_folder(path)
    try:
        yield tmp
        try:
            os.replace(tmp, path)  # replaces an empty folder; a non-empty one is ENOTEMPTY
        except OSError as e:
            raise _naming(e, path) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_files(folder: str | os.PathLike, name: str, last: str | None = None) -> Iterator[Path]:
    """A temp folder (``.NAME.partial-PID`` in ``folder``) to write the files of one
    result in; when the block ends without error each is renamed into ``folder``,
    ``last`` after the others (the file that vouches for them, e.g. a checkpoint's
    JSON, which names its weights' hash). All the writing is over before the first
    rename, so old and new files can mix only if a kill lands between two renames,
    and then ``last`` still vouches only for what it names. Removed in any case."""
    folder = Path(folder)
    tmp = _temp_folder(folder / name)
    try:
        try:
            yield tmp
        except OSError as e:  # about a file in the temp folder: name the one it becomes
            if e.filename is None or Path(os.fsdecode(e.filename)).parent != tmp:
                raise
            raise _naming(e, folder / Path(os.fsdecode(e.filename)).name) from None
        files = sorted(os.listdir(tmp), key=lambda f: (f == last, f))
        for f in files:  # a folder in the way would stop the renames half done: not begun
            if (folder / f).is_dir() and not (folder / f).is_symlink():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(folder / f))
        for f in files:
            try:
                os.replace(tmp / f, folder / f)
            except OSError as e:
                raise _naming(e, folder / f) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
