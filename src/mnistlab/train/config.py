"""The one configuration object of a training run, printed at start and saved with the run."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields

from ..errors import UsageError

__all__ = [
    "DATASET_AUGMENT",
    "DATASET_OUTLIERS",
    "LOSSES",
    "OPTIMIZERS",
    "RUNTIME",
    "SCHEDULES",
    "TrainConfig",
]

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
LOSSES = ("ce", "mse")
SCHEDULES = ("none", "step", "cosine", "onecycle")


# The default recipe's augmentation for each dataset, chosen on its validation split:
# MNIST's models how people write (experiments/handwriting.py); Fashion-MNIST's garments
# learn best unaugmented, ahead of flips and shifts and far ahead of the handwriting
# set (docs/models.md, "Fashion-MNIST")
DATASET_AUGMENT = {"mnist": "affine2+thickness+ink+lowres", "fashion-mnist": "none"}

# The share of each batch added as images that are no digit (data/outliers.py), for
# the reject option: one outlier per 8 digits (docs/trust.md). Garments need none.
DATASET_OUTLIERS = {"mnist": 0.125}


# Bounds beyond which a value is a mistake, not a recipe (and would overflow or hang).
LIMITS = {  # int fields: 1 <= value <= limit
    "epochs": 10_000,
    "batch_size": 1_000_000,
    "eval_batch_size": 1_000_000,
    "step_size": 10_000,
    "log_every": 1_000_000_000,
    "train_subset": 100_000_000,
    "steps": 100_000_000,
}
MAX_VAL_SIZE = 100_000_000
MAX_LR = 10.0
MIN_STD, MAX_STD = 1e-3, 10.0
# the loader seeds torch generators with (seed * 1_000_003 + epoch) * 100_003 + batch,
# which must stay below 2**64
MAX_SEED = 100_000_000


def max_threads() -> int:
    """The most CPU threads worth asking for: 4 per CPU."""
    return 4 * (os.cpu_count() or 1)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value) -> bool:
    return isinstance(value, str)


def _runtime(default):
    return field(default=default, metadata={"runtime": True})


@dataclass
class TrainConfig:
    """Every knob of a run. The defaults are the default recipe: ``fast``, 11 epochs of
    handwriting augmentation with one non-digit per 8 digits in each batch, ~99.5% on
    MNIST, people's own digits read too (docs/handwriting.md) and what is no digit
    answered "not a digit" (docs/trust.md).

    One dataclass, saved whole as the run's ``config.json``. Its fields are of two
    kinds, declared per field: the *recipe* (model, optimiser, lr ...), which decides
    the numbers a run produces, and *runtime* settings (device, threads, where the
    run folder goes ...), which do not. ``recipe()`` gives the first kind alone.
    """

    # The recipe: what the run computes.
    model: str = "fast"
    model_kwargs: dict = field(default_factory=dict)
    dataset: str = "mnist"
    # 11, one more than before outlier exposure, which costs a little accuracy
    # (docs/trust.md): the two together train about 25% longer than 10 epochs without
    epochs: int = 11
    # a budget in optimiser steps instead of epochs, finer than an epoch: the run
    # trains this many steps in all, its last epoch cut short (None: `epochs` epochs)
    steps: int | None = None
    batch_size: int = 256
    eval_batch_size: int = 1000
    optimizer: str = "adam"
    lr: float = 0.01
    momentum: float = 0.9  # sgd only
    # adam and adamw: the decay rates of their averages of the gradient and its square.
    # beta1 None: 0.9, and the onecycle schedule cycles it between 0.95 and 0.85 as
    # torch does; a number: that value, held for the whole run
    beta1: float | None = None
    beta2: float = 0.999
    weight_decay: float = 0.0
    loss: str = "ce"
    label_smoothing: float = 0.1  # chosen with the augmentations (docs/handwriting.md)
    # none, a name in data.augment.AUGMENTATIONS or a + chain; None: the dataset's own,
    # DATASET_AUGMENT (for MNIST, how people write and how their digits reach us)
    augment: str | None = None
    mean: float | None = None  # normalisation; None = the dataset's own mean/std
    std: float | None = None
    schedule: str = "onecycle"
    step_size: int = 1  # epochs between decays, for the step schedule
    gamma: float = 0.7  # decay factor, for the step schedule
    # decay of an exponential moving average of the weights, evaluated and saved in
    # their place (train/ema.py); 0 = off
    ema: float = 0.0
    # outlier exposure: this share of each batch added as non-digits (data/outliers.py),
    # weighted by outlier_weight in the loss; None: the dataset's own, DATASET_OUTLIERS
    # (with cross-entropy; 0 with MSE)
    outliers: float | None = None
    outlier_weight: float = 0.5
    val_size: int = 5000
    train_subset: int | None = None
    seed: int = 0
    # Runtime: where and how it runs, and what it is called. Same recipe, same numbers.
    data_dir: str | None = _runtime(None)
    device: str = _runtime("auto")
    threads: int | None = _runtime(None)
    # NHWC weights and activations: `fast` trains 1.5x faster on CPU (benchmarks/results.md)
    channels_last: bool = _runtime(True)
    log_every: int = _runtime(100)
    out_dir: str = _runtime("runs")
    run_name: str | None = _runtime(None)
    preset: str | None = _runtime(None)  # the recipe this config started from, for the record
    dry_run: bool = _runtime(False)  # one epoch of 2 batches, evaluated on 512 images

    def __post_init__(self) -> None:
        if self.augment is None:  # resolved here, so config.json records what was trained
            self.augment = DATASET_AUGMENT.get(self.dataset, "none")
        if self.outliers is None:
            share = DATASET_OUTLIERS.get(self.dataset, 0.0)
            self.outliers = share if self.loss == "ce" else 0.0

    def validate(self) -> TrainConfig:
        def bad(name: str, what: str, value) -> UsageError:
            return UsageError(f"must be {what}, got {value!r}", option=name)

        self._check_types()
        choices = {"optimizer": OPTIMIZERS, "loss": LOSSES, "schedule": SCHEDULES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise bad(name, f"one of {', '.join(allowed)}", getattr(self, name))
        for name, top in LIMITS.items():
            value = getattr(self, name)
            if value is not None and not 1 <= value <= top:
                raise bad(name, f"at least 1 and at most {top:,}", value)
        if not 0 <= self.seed <= MAX_SEED:
            raise bad("seed", f"between 0 and {MAX_SEED:,}", self.seed)
        if not 0 < self.lr <= MAX_LR:  # also refuses nan; inf is above the bound
            raise bad("lr", f"greater than 0 and at most {MAX_LR:g}", self.lr)
        if not 0 <= self.momentum < 1:
            raise bad("momentum", "in [0, 1)", self.momentum)
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise bad(name, "in [0, 1)", value)
        if not 0 <= self.weight_decay <= 1:
            raise bad("weight_decay", "in [0, 1]", self.weight_decay)
        if not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "in [0, 1)", self.label_smoothing)
        if self.label_smoothing and self.loss != "ce":
            raise UsageError(
                f"works with loss ce only; set it to 0 for loss {self.loss}",
                option="label_smoothing",
            )
        if not 0 <= self.ema < 1:
            raise bad(
                "ema", "in [0, 1): the decay per step, such as 0.999, or 0 for none", self.ema
            )
        if not 0 <= self.outliers <= 1:
            raise bad(
                "outliers", "in [0, 1]: the share of each batch added as non-digits", self.outliers
            )
        if not 0 <= self.outlier_weight <= 10:
            raise bad("outlier_weight", "in [0, 10]", self.outlier_weight)
        if self.outliers and self.loss != "ce":
            raise UsageError(
                f"work with loss ce only; set it to 0 for loss {self.loss}", option="outliers"
            )
        if not 0 < self.gamma <= 1:
            raise bad("gamma", "in (0, 1]", self.gamma)
        if not 0 <= self.val_size <= MAX_VAL_SIZE:
            raise bad("val_size", f"between 0 and {MAX_VAL_SIZE:,}", self.val_size)
        from ..data.augment import AUGMENTATIONS, make_augment

        try:
            make_augment(self.augment)
        except ValueError:
            names = ", ".join(AUGMENTATIONS)
            raise bad(
                "augment", f"none, {names} or a chain like affine2+thickness", self.augment
            ) from None
        # pixels are in [0, 1]: a mean outside it or a std far from ~0.3 is a mistake
        if self.mean is not None and not 0 <= self.mean <= 1:
            raise bad("mean", "a number in [0, 1] (pixels are in [0, 1])", self.mean)
        if self.std is not None and not MIN_STD <= self.std <= MAX_STD:
            what = f"a number in [{MIN_STD:g}, {MAX_STD:g}] (MNIST's is about 0.31)"
            raise bad("std", what, self.std)
        name = self.run_name
        if name is not None and (name in ("", ".", "..") or "/" in name or "\\" in name):
            raise UsageError(
                f"the run name must be a plain folder name, without '/' (the run folder "
                f"goes in the output folder), got {name!r}"
            )
        if self.threads is not None and not 1 <= self.threads <= max_threads():
            raise bad("threads", f"between 1 and {max_threads()} (4 per CPU)", self.threads)
        return self

    def _check_types(self) -> None:
        """Each field of its declared type (a config.json may have been edited by hand)."""
        for f in fields(self):
            value, kind = getattr(self, f.name), str(f.type)
            if value is None and "None" in kind:
                continue
            if kind.startswith("dict"):
                ok, what = isinstance(value, dict) and all(map(_is_str, value)), "a mapping"
            elif kind.startswith("float"):
                ok, what = _is_int(value) or isinstance(value, float), "a number"
            elif kind.startswith("int"):
                ok, what = _is_int(value), "a whole number"
            elif kind.startswith("bool"):
                ok, what = isinstance(value, bool), "true or false"
            else:
                ok, what = isinstance(value, str), "text"
            if not ok:
                raise UsageError(f"must be {what}, got {value!r}", option=f.name)

    def total_epochs(self, steps_per_epoch: int) -> int:
        """The epochs the run trains: ``epochs``, or as many as ``steps`` begins."""
        if self.steps is None:
            return self.epochs
        return -(-self.steps // steps_per_epoch)  # ceil

    def epoch_steps(self, epoch: int, steps_per_epoch: int) -> int:
        """The steps epoch ``epoch`` (from 1) trains: all, or what ``steps`` leaves."""
        if self.steps is None:
            return steps_per_epoch
        return max(0, min(steps_per_epoch, self.steps - (epoch - 1) * steps_per_epoch))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def recipe(self) -> dict:
        """The recipe fields alone: two configs with equal recipes train the same run."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME}

    @classmethod
    def from_preset(cls, name: str, **overrides) -> TrainConfig:
        """The preset's recipe, with ``overrides`` on top."""
        from .presets import get_preset

        return cls(**{**get_preset(name), "preset": name, **overrides})

    def outlier_rows(self) -> int:
        """The outliers added to each batch."""
        return round(self.batch_size * self.outliers)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d.setdefault("outliers", 0.0)  # a run saved before outlier exposure had none
        return cls(**d)


RUNTIME = frozenset(f.name for f in fields(TrainConfig) if f.metadata.get("runtime"))
