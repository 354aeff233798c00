"""mnistlab: train, compare, understand and use handwritten-digit recognizers.

The public API is what ``__all__`` lists; modules starting with ``_`` are private.
"""

from ._version import __version__
from .analysis.report import write_run_report
from .data import DeviceLoader, download_dataset, list_datasets, load_data
from .errors import MnistlabError, UsageError
from .models import ModelMeta, create_model, list_models
from .runs.checkpoint import load_checkpoint, save_checkpoint
from .train import TrainConfig, evaluate, fit, train_one_epoch

__all__ = [
    "DeviceLoader",
    "MnistlabError",
    "ModelMeta",
    "TrainConfig",
    "UsageError",
    "__version__",
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
    "write_run_report",
]
