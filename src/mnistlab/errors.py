"""The exceptions users see, each turned into one line by the CLI.

A message says what is wrong and what to do. The library never names a
command-line flag: an error about a setting carries the setting's Python name in
``option`` (``"val_size"``), and the CLI shows it as the flag (``--val-size``).
An error may also carry a ``kind`` so that callers (the web app) can react to
what went wrong without matching the message's words.
"""

from __future__ import annotations

__all__ = ["MnistlabError", "UsageError"]


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
