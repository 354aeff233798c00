"""OS errors as one line (``errors.describe_os_error``): each names the path and a fix, and
one reaching ``main`` is printed that way."""

from __future__ import annotations

import errno
import os

import pytest

from mnistlab.errors import describe_os_error
from tests.support.cli import fails


@pytest.mark.parametrize(
    "code,needle",
    [
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "not permitted"),
        (errno.ENOENT, "no such file or folder"),
        (errno.EISDIR, "is a folder"),
        (errno.ENOTDIR, "is a file, not a folder"),
        (errno.EEXIST, "already exists"),
        (errno.EROFS, "read-only file system"),
        (errno.ENOSPC, "no space left"),
        (errno.ENAMETOOLONG, "too long"),
        (errno.ELOOP, "symbolic links"),
        (errno.EXDEV, "check the path"),  # no fix of its own: the reason and a check
    ],
)
def test_every_os_error_names_the_path_and_a_fix(code, needle):
    line = describe_os_error(OSError(code, os.strerror(code), "/some/where/x.png"))
    assert line is not None and "/some/where/x.png" in line and needle in line
    assert ";" in line  # what is wrong; what to do


def test_a_rename_names_its_destination_and_a_full_disk_needs_no_path():
    e = OSError(errno.EISDIR, "Is a directory", "/d/.x.png.123.tmp", None, "/d/x.png")
    assert "/d/x.png is a folder" in describe_os_error(e)
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device")).startswith(
        "no space left"
    )
    # not about a file: a bug or a network error, not the user's path
    assert describe_os_error(OSError(errno.ECONNREFUSED, "Connection refused")) is None
    assert describe_os_error(OSError("no errno")) is None


@pytest.mark.parametrize("where", ["under a file", "too long"])
def test_an_os_error_reaching_main_is_one_line(where, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "cmp" if where == "under a file" else tmp_path / ("x" * 300)
    line = fails(["compare", "mlp-small", "linear", "--dry-run", "--out", str(out)], 1, capsys)
    assert str(out) in line
    assert ("is a file, not a folder" if where == "under a file" else "too long") in line
