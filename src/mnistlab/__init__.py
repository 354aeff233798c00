"""mnistlab: train, compare, understand and use handwritten-digit recognizers.

The public API is what ``__all__`` lists; modules starting with ``_`` are private.
Each name is imported on first use (PEP 562), so ``import mnistlab`` is instant:
the command line (``python -m mnistlab``, the ``mnistlab`` script) can set up
Ctrl-C before torch starts loading.
"""

from __future__ import annotations

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
