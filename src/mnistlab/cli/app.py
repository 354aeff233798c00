"""The ``mnistlab`` command line. Run ``mnistlab --help`` for the tour.

This module builds the Typer app from the command modules (one per group:
train, analysis, use, bench, data) and turns every error into one line.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

import typer
from rich.console import Console
from rich.markup import escape

from .._version import __version__
from ..errors import MnistlabError, describe_os_error
from . import analysis, bench, combine, train, use
from .data import data_app

try:  # recent Typer releases vendor click; older ones use the click package
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as click_exc

__all__ = ["app", "main", "preload"]

app = typer.Typer(
    name="mnistlab",
    help="Train, compare, understand and use handwritten-digit recognizers.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mnistlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train, compare, understand and use handwritten-digit recognizers.

    Start with `mnistlab train`: it trains the default model to about 99.5% test
    accuracy, robust to people's own handwriting, in about half a minute on a laptop
    CPU (`--preset fast`: 99% in one epoch, about five seconds) and leaves
    everything in runs/.
    """


# In the order `mnistlab --help` lists them.
app.command()(train.train)
app.command()(analysis.evaluate)
app.command()(analysis.inspect)
app.command()(analysis.compare)
app.command()(combine.ensemble)
app.command()(combine.calibrate)
app.command()(use.predict)
app.command()(use.export)
app.command()(use.serve)
app.command()(bench.bench)
app.command("ops-bench")(bench.ops_bench)
app.command()(analysis.report)
app.command()(analysis.summary)
app.command()(analysis.models)
app.add_typer(data_app, name="data")


def _fail(message: str, code: int) -> int:
    # escaped: "pip install 'mnistlab[train]'" must not be read as a style
    line = f"[bold red]error:[/] {escape(message)}"
    Console(stderr=True, highlight=False).print(line, soft_wrap=True)
    return code


# Commands that use a trained model: they load torch only if the model needs it
# (serve/predictor.py), so the small install (no torch) runs them.
TORCH_FREE = {"predict", "serve", "data"}
# What `pip install 'mnistlab[train]'` adds to the small install
TRAIN_ONLY = {"torch", "matplotlib", "torchinfo", "safetensors", "onnx"}


def preload(argv: list[str]) -> None:
    """Import torch (and numpy) now, unless only help or the version is asked for, or
    the command is one that may not need torch.

    ``mnistlab.cli.run()`` calls this while Ctrl-C still ends the process at once: an interrupt
    inside these imports would otherwise be a traceback, or be swallowed by them.
    """
    if not argv or {"-h", "--help", "--version"} & set(argv):
        return
    import importlib

    import numpy  # noqa: F401

    if argv[0] in TORCH_FREE:
        # what predict loads, torch aside (not serve's: with --workers its supervisor
        # needs neither, and holding them would cost it 30 MB)
        if argv[0] == "predict":
            import onnxruntime  # noqa: F401
            import scipy.ndimage  # noqa: F401
        return
    try:
        import torch  # noqa: F401
    except ImportError:  # the command says so in one line (main)
        return

    # what Typer imports when it first converts a value (pydantic, about 0.3 s)
    with contextlib.suppress(ImportError):
        importlib.import_module("typer._adapters")


def main(argv: list[str] | None = None, *, ready: Callable[[], None] | None = None) -> int:
    """Entry point: every error becomes one line on stderr and a non-zero exit status.

    ``ready`` is called once the command line is built and parsed, just before the
    command runs (``mnistlab.cli.run()`` hands Ctrl-C over to ``KeyboardInterrupt`` there).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        command = typer.main.get_command(app)
        # Not ``command.main``: Typer's turns Ctrl-C into a silent exit status 130.
        with command.make_context("mnistlab", args) as ctx:
            if ready is not None:
                ready()
            rv = command.invoke(ctx)
        return rv if isinstance(rv, int) else 0
    except click_exc.NoArgsIsHelpError:
        return 0  # the help was already printed
    except click_exc.UsageError as e:
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        return _fail(f"{e.format_message()}{hint}", 2)
    except click_exc.ClickException as e:
        return _fail(e.format_message(), e.exit_code)
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return _fail("interrupted", 130)
    except MnistlabError as e:
        return _fail(e.cli_message(), e.exit_code)
    except ModuleNotFoundError as e:
        missing = (e.name or "").partition(".")[0]
        if missing not in TRAIN_ONLY or os.environ.get("MNISTLAB_DEBUG"):
            return _unexpected(e)
        return _fail(
            f"this command needs {missing}, which is not installed: pip install 'mnistlab[train]'",
            2,
        )
    except BrokenPipeError:
        return 1
    except OSError as e:  # a file or folder: the path and what to do, else a bug
        message = describe_os_error(e)
        if message is None or os.environ.get("MNISTLAB_DEBUG"):
            return _unexpected(e)
        return _fail(message, 1)
    except Exception as e:
        return _unexpected(e)


def _unexpected(e: Exception) -> int:
    """A bug: still one line, with the way to see more (``raise`` inside ``except``)."""
    if os.environ.get("MNISTLAB_DEBUG"):
        raise e
    return _fail(f"unexpected {type(e).__name__}: {e} (set MNISTLAB_DEBUG=1 for the traceback)", 1)
