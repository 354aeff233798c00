"""Training: the config, the presets, the loop functions and ``fit``.

The config is plain Python; the rest needs torch and loads on first use
(``_imports.py``), so the command line can show ``train --help`` without it.
"""

from .._imports import lazy_exports
from .config import LOSSES, OPTIMIZERS, RUNTIME, SCHEDULES, TrainConfig

_EXPORTS = {
    "FitResult": ".fitting",
    "Reporter": ".fitting",
    "fit": ".fitting",
    "evaluate": ".loop",
    "train_one_epoch": ".loop",
    "make_loss": ".optim",
    "make_optimizer": ".optim",
    "make_scheduler": ".optim",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
