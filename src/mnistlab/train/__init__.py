"""Training: the config, the presets, the loop functions and ``fit``."""

from .config import LOSSES, OPTIMIZERS, RUNTIME, SCHEDULES, TrainConfig
from .fit import FitResult, Reporter, fit
from .loop import evaluate, train_one_epoch
from .optim import make_loss, make_optimizer, make_scheduler

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "RUNTIME",
    "SCHEDULES",
    "FitResult",
    "Reporter",
    "TrainConfig",
    "evaluate",
    "fit",
    "make_loss",
    "make_optimizer",
    "make_scheduler",
    "train_one_epoch",
]
