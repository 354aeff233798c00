"""A run folder that cannot be read is said so in one line, for every command that reads one."""

from __future__ import annotations

import os

import pytest

from tests.support.cli import fails


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes any folder whatever its mode")
@pytest.mark.parametrize("command", ["evaluate", "inspect", "report"])
def test_an_unreadable_run_folder(command, tiny_run_copy, capsys):
    tiny_run_copy.chmod(0)
    try:
        line = fails([command, str(tiny_run_copy)], 1, capsys)
    finally:
        tiny_run_copy.chmod(0o755)
    assert str(tiny_run_copy) in line and "permission denied" in line
