"""Runs on disk: checkpoints (safetensors + JSON) and the run folder's layout."""

from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint_json, save_checkpoint
from .folder import (
    NotARunFolder,
    checkpoint_json,
    epoch_records,
    read_metrics,
    require_run_folder,
)

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
