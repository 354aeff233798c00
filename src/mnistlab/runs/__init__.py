"""Runs on disk: checkpoints (safetensors + JSON) and the run folder's layout.

Loading and saving weights needs torch, so those names load on first use
(``_imports.py``); reading a checkpoint's JSON and checking its files does not.
"""

from .._imports import lazy_exports
from .folder import (
    NotARunFolder,
    checkpoint_json,
    epoch_records,
    read_metrics,
    require_run_folder,
)
from .manifest import CheckpointError, read_checkpoint_json

_EXPORTS = {"load_checkpoint": ".checkpoint", "save_checkpoint": ".checkpoint"}

__all__ = [
    "CheckpointError",
    "NotARunFolder",
    "checkpoint_json",
    "epoch_records",
    "load_checkpoint",
    "read_checkpoint_json",
    "read_metrics",
    "require_run_folder",
    "save_checkpoint",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
