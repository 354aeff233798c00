"""mnistlab: train, compare, understand and use handwritten-digit recognizers.

The public API is what ``__all__`` lists; modules starting with ``_`` are private.
Each name is imported on first use (PEP 562), so ``import mnistlab`` is instant:
the command line (``python -m mnistlab``, the ``mnistlab`` script) can set up
Ctrl-C before torch starts loading.
"""

from __future__ import annotations

import os
import sys


def _exit_interrupted(signum, frame) -> None:  # pragma: no cover - runs in a subprocess
    """Ctrl-C before a command runs: one line and exit status 130 (``mnistlab.cli``)."""
    try:
        os.write(2, b"error: interrupted\n")
    finally:
        os._exit(130)


def _imported_by_python_m() -> bool:
    """Whether runpy is importing this package for ``python -m mnistlab`` (``sys.argv[0]``
    is ``"-m"`` while it does)."""
    if sys.argv[:1] != ["-m"]:
        return False
    args = sys.orig_argv[1:]
    for i, arg in enumerate(args):
        if arg == "-m":
            return args[i + 1 : i + 2] == ["mnistlab"]
        if arg.startswith("-m"):
            return arg == "-mmnistlab"
    return False


if _imported_by_python_m():
    # Ctrl-C is one line from here on, also when a busy machine takes its time over the
    # imports below (mnistlab.cli.run sets the same handler for the console script).
    # _signal is the C module: `signal` would import enum first.
    import _signal

    _signal.signal(_signal.SIGINT, _exit_interrupted)

from typing import TYPE_CHECKING

from ._imports import lazy_exports, quiet_libraries
from ._version import __version__
from .errors import MnistlabError, UsageError

quiet_libraries()  # before anything of ours can import ONNX Runtime (see _imports)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time see __getattr__
    from .analysis.calibrate import calibrate_checkpoint
    from .analysis.ensemble import build_ensemble
    from .analysis.report import write_run_report
    from .data import DeviceLoader, download_dataset, list_datasets, load_data
    from .models import ModelMeta, create_model, list_models, with_tta
    from .runs.checkpoint import load_checkpoint, save_checkpoint
    from .train import TrainConfig, evaluate, fit, train_one_epoch

# public name -> the module that defines it
_LAZY = {
    "build_ensemble": ".analysis.ensemble",
    "calibrate_checkpoint": ".analysis.calibrate",
    "write_run_report": ".analysis.report",
    "DeviceLoader": ".data",
    "download_dataset": ".data",
    "list_datasets": ".data",
    "load_data": ".data",
    "ModelMeta": ".models",
    "create_model": ".models",
    "list_models": ".models",
    "with_tta": ".models",
    "load_checkpoint": ".runs.checkpoint",
    "save_checkpoint": ".runs.checkpoint",
    "TrainConfig": ".train",
    "evaluate": ".train",
    "fit": ".train",
    "train_one_epoch": ".train",
}

__all__ = [
    "DeviceLoader",
    "MnistlabError",
    "ModelMeta",
    "TrainConfig",
    "UsageError",
    "__version__",
    "build_ensemble",
    "calibrate_checkpoint",
    "create_model",
    "download_dataset",
    "evaluate",
    "fit",
    "list_datasets",
    "list_models",
    "load_checkpoint",
    "load_data",
    "save_checkpoint",
    "train_one_epoch",
    "with_tta",
    "write_run_report",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
