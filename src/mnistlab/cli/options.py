"""What the command modules share: the console, common options and arguments, small helpers.

An option object here is one definition used by every command that takes it, so
a flag reads the same in every ``--help``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

__all__ = [
    "BACKEND",
    "DATA_DIR",
    "DEVICE",
    "INFERENCE_DEVICE",
    "RUN_FOLDER",
    "RUN_OR_CHECKPOINT",
    "RUN_OR_MODEL",
    "console",
    "pick_device",
    "resolve_run",
    "table",
]

console = Console(highlight=False, soft_wrap=True)  # long lines stay greppable in logs

DATA_DIR = typer.Option(None, help="Dataset folder. \\[default: $MNISTLAB_DATA or the user cache]")
# Where training and evaluation run: None is "auto".
DEVICE = typer.Option(None, help="auto, cpu, cuda or mps. \\[default: auto]")
# Where a trained model answers: the CPU unless asked.
INFERENCE_DEVICE = typer.Option("cpu", help="cpu, cuda or mps.")

# How a trained model runs (serve/predictor.py): "auto" is the run's ONNX file.
BACKEND = typer.Option(
    "auto",
    help="auto (the run's ONNX file through ONNX Runtime on the CPU, else torch), onnx or torch.",
)

RUN_FOLDER = typer.Argument(..., help="A run folder.")
RUN_OR_CHECKPOINT = typer.Argument(..., help="A run folder, or a checkpoint .json/.safetensors.")
RUN_OR_MODEL = typer.Argument(..., help="A run folder, a checkpoint or an exported .onnx file.")


def resolve_run(run: Path, out: Path | None, name: str, which: str = "best") -> tuple[Path, Path]:
    """For a command given "a run folder or a checkpoint": the checkpoint it means, and
    where the command writes (``out`` if given, else ``RUN/name`` or beside the checkpoint).
    """
    from ..runs.folder import checkpoint_json, output_dir

    return checkpoint_json(run, which), out or output_dir(run, name)


def pick_device(device: str):
    """``device`` as torch names it (``auto`` resolved), loading torch only off the CPU
    (``auto`` is the CPU where torch is not installed)."""
    from ..serve.engine import has_torch, need_torch

    if device == "cpu" or (device == "auto" and not has_torch()):
        return "cpu"
    from .._runtime import pick_device as torch_device

    if not has_torch():
        raise need_torch(f"--device {device}")
    return torch_device(device)


def table(title: str, header: list[str], rows: list[list[str]], left: int = 1) -> Table:
    """A rich table with the first ``left`` columns aligned left and the rest right."""
    t = Table(title=title)
    for i, column in enumerate(header):
        t.add_column(column, justify="left" if i < left else "right")
    for row in rows:
        t.add_row(*row)
    return t
