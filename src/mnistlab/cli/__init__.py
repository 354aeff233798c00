"""The ``mnistlab`` command line: a Typer app with one module per command group.

``main(argv)`` runs it and turns every error into one line and an exit status;
``run()`` is the console-script entry point (``python -m mnistlab`` calls it too).

This module imports nothing heavy: ``run()`` first makes Ctrl-C end the process
with one line ("interrupted", exit status 130), and only then loads torch, Typer
and the commands, which takes a second or two. An interrupt raised inside those
imports would print a long traceback, or be swallowed by a library's ``except``
and leave a half-imported module behind, so until the commands start Ctrl-C
exits at once; from then on it is a ``KeyboardInterrupt`` that ``main`` (and
training, which stops after the current step) turns into the same line.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import sys

from .. import _exit_interrupted

__all__ = ["app", "main", "run"]


def _interrupt_raises() -> None:
    """From here on Ctrl-C is a ``KeyboardInterrupt``: training stops after a step."""
    if signal.getsignal(signal.SIGINT) is _exit_interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run() -> None:
    """The console script: Ctrl-C is one line and exit 130 from the very start."""
    signal.signal(signal.SIGINT, _exit_interrupted)  # first: nothing heavy is loaded yet
    # Importing torch makes hundreds of thousands of objects and no garbage: collecting
    # while it imports costs 10-15% of the import. Frozen afterwards, they are never
    # scanned again, which makes a later import (torch._dynamo, which any optimiser
    # loads) 20% quicker too.
    gc.disable()
    try:
        cli_app = importlib.import_module(".app", __name__)
        globals()["app"] = cli_app.app  # the Typer app, not the module of the same name
        cli_app.preload(sys.argv[1:])  # torch and numpy, while Ctrl-C still exits at once
    finally:
        gc.enable()
    gc.freeze()
    status = cli_app.main(ready=_interrupt_raises)
    # The command is over: a Ctrl-C now would only turn its exit status into a
    # signal while Python shuts down (ignored handlers are kept to the end).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if status == 130:
        # Interrupted. If the interrupt ever passed through an exec() of a string (a
        # dataclass being defined, say), CPython kills itself with SIGINT once it has
        # shut down, and the status and its one line would read as a crash: leave now.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)
    sys.exit(status)


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv``; every error becomes one line and an exit status."""
    from .app import main as app_main

    return app_main(argv)


def __getattr__(name: str):
    if name == "app":  # the Typer app, loaded on first use
        from .app import app as typer_app

        globals()["app"] = typer_app
        return typer_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
