"""The exceptions users see, each turned into one line by the CLI.

A message says what is wrong and what to do. The library never names a
command-line flag: an error about a setting carries the setting's Python name in
``option`` (``"val_size"``), and the CLI shows it as the flag (``--val-size``).
An error may also carry a ``kind`` so that callers (the web app) can react to
what went wrong without matching the message's words.
"""

from __future__ import annotations

import errno
import os

__all__ = ["MnistlabError", "UsageError", "describe_os_error"]


class MnistlabError(Exception):
    """A problem the user can fix. The message is one line: what is wrong and what to do."""

    exit_code = 1

    def __init__(self, message: str, *, option: str | None = None, kind: str | None = None):
        self.detail = message  # the message without the setting's name
        self.option = option  # the setting it is about, as a Python name
        self.kind = kind  # a machine-readable category, e.g. "too_large"
        super().__init__(f"{option} {message}" if option else message)

    def cli_message(self) -> str:
        """The message as the command line shows it: the setting named as its flag."""
        if self.option is None:
            return str(self)
        return f"--{self.option.replace('_', '-')} {self.detail}"


class UsageError(MnistlabError):
    """A bad flag or value: exit status 2, as for any command-line usage error."""

    exit_code = 2


# What to do about an OS error, by its errno: "{path}" is the file or folder it names.
_OS_FIXES = {
    errno.EACCES: "{path}: permission denied; check its permissions, or choose another path",
    errno.EPERM: "{path}: operation not permitted (read-only or immutable?); "
    "check its permissions, or choose another path",
    errno.ENOENT: "{path}: no such file or folder; check the path",
    errno.EEXIST: "{path} already exists and is in the way; move it, or choose another path",
    errno.EISDIR: "{path} is a folder, not a file; give a file path",
    errno.ENOTDIR: "{path}: part of this path is a file, not a folder; choose another path",
    errno.ENOTEMPTY: "{path}: the folder is not empty; empty it, or choose another path",
    errno.EROFS: "{path}: read-only file system; choose a path on a writable disk",
    errno.ENOSPC: "{path}: no space left on the device; free some space, or write elsewhere",
    errno.EDQUOT: "{path}: disk quota exceeded; free some space, or write elsewhere",
    errno.ENAMETOOLONG: "{path}: file name too long; choose a shorter name",
    errno.ELOOP: "{path}: too many levels of symbolic links (a link loop?); fix the link",
    errno.EIO: "{path}: input/output error; check the disk, or use another path",
    errno.ETXTBSY: "{path} is busy (in use by a program); close it, or choose another path",
    errno.EMFILE: "{path}: too many open files; raise the limit (ulimit -n) and try again",
    errno.ENFILE: "{path}: too many open files on this system; try again later",
}
# errors about the disk rather than one path, meaningful even when none is named
_NO_PATH_OK = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EMFILE, errno.ENFILE}


def describe_os_error(e: OSError) -> str | None:
    """An ``OSError`` about a file as one line naming the path and the fix, or None when
    it is not about a file (a network error, or an OSError that names nothing).

    For a rename or link the error names two paths; the second is the destination,
    the one a user chose, so that one is shown.
    """
    if e.errno is None:
        return None
    path = next(
        (p for p in (e.filename2, e.filename) if isinstance(p, (str, bytes, os.PathLike))),
        None,
    )
    if path is None and e.errno not in _NO_PATH_OK:
        return None
    template = _OS_FIXES.get(e.errno)
    if template is None:
        reason = e.strerror or os.strerror(e.errno)
        template = "{path}: " + reason.lower() + "; check the path and its permissions"
    if path is None:
        return template.replace("{path}: ", "")
    return template.format(path=os.fsdecode(path))
