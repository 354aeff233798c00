"""Training: the config, the loop functions and ``fit``."""

from .config import LOSSES, OPTIMIZERS, SCHEDULES, TrainConfig
from .fit import FitResult, Reporter, fit, pick_device, read_metrics
from .loop import evaluate, train_one_epoch
from .optim import count_params, make_loss, make_optimizer, make_scheduler

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "FitResult",
    "Reporter",
    "TrainConfig",
    "count_params",
    "evaluate",
    "fit",
    "make_loss",
    "make_optimizer",
    "make_scheduler",
    "pick_device",
    "read_metrics",
    "train_one_epoch",
]
