"""The command line's errors, as tests check them: one line, no traceback."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlab.cli import main
from tests.support.processes import cli_env


def one_line(err: str) -> str:
    """The single error line of a failed command: no traceback, no "unexpected"."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "unexpected" not in err, err
    return lines[0]


def fails(args: list[str], code: int, capsys) -> str:
    assert main(args) == code
    return one_line(capsys.readouterr().err)


def _chattr(path: Path, flag: str) -> bool:
    try:
        proc = subprocess.run(["chattr", flag, str(path)], capture_output=True, timeout=10)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@contextlib.contextmanager
def immutable(path: Path):
    """``path`` made immutable (``chattr +i``): not even root can add files to it."""
    if not _chattr(path, "+i"):
        pytest.skip("chattr +i does not work here (needs root and a file system with it)")
    try:
        yield path
    finally:
        _chattr(path, "-i")


def run_cli(mnist_dir: Path, *args, timeout: int = 120, **kwargs) -> subprocess.CompletedProcess:
    """``python -m mnistlab ARGS`` as a user runs it: real data, never a download."""
    return subprocess.run(
        [sys.executable, "-m", "mnistlab", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(mnist_dir),
        **kwargs,
    )


def run_main(*args) -> subprocess.CompletedProcess:
    """``mnistlab ARGS`` run by ``main`` in this process, its output captured, as
    ``run_cli`` returns it: for tests of what a command does, not of how a process starts
    or ends (tests/cli/ has those). A new process costs a second or two of imports."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(["mnistlab", *args], code, out.getvalue(), err.getvalue())


def error_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The single error line of a failed ``run_cli``: exit ``code``, no traceback, and
    each of ``needles`` in it."""
    err = proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout, err)
    assert "Traceback" not in err + proc.stdout and "unexpected" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


def error_from(capsys, *needles: str) -> str:
    """The single error line ``main`` printed (captured by ``capsys``), holding ``needles``."""
    line = one_line(capsys.readouterr().err)
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, line
    return line
