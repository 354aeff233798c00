"""The one exception type users see, turned into a one-line message by the CLI."""

from __future__ import annotations

__all__ = ["MnistlabError", "UsageError"]


class MnistlabError(Exception):
    """A problem the user can fix. The message is one line: what is wrong and what to do."""

    exit_code = 1


class UsageError(MnistlabError):
    """A bad flag or value: exit status 2, as for any command-line usage error."""

    exit_code = 2
