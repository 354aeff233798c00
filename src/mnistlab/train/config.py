"""The one configuration object of a training run, printed at start and saved with the run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from ..errors import UsageError

__all__ = ["LOSSES", "OPTIMIZERS", "RUNTIME", "SCHEDULES", "TrainConfig"]

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
LOSSES = ("ce", "mse")
SCHEDULES = ("none", "step", "cosine", "onecycle")


def _runtime(default):
    return field(default=default, metadata={"runtime": True})


@dataclass
class TrainConfig:
    """Every knob of a run. The defaults are the default recipe: ``fast``, 10 epochs of
    handwriting augmentation, ~99.5% on MNIST and people's own digits read too
    (docs/handwriting.md).

    One dataclass, saved whole as the run's ``config.json``. Its fields are of two
    kinds, declared per field: the *recipe* (model, optimiser, lr ...), which decides
    the numbers a run produces, and *runtime* settings (device, threads, where the
    run folder goes ...), which do not. ``recipe()`` gives the first kind alone.
    """

    # The recipe: what the run computes.
    model: str = "fast"
    model_kwargs: dict = field(default_factory=dict)
    dataset: str = "mnist"
    epochs: int = 10
    batch_size: int = 256
    eval_batch_size: int = 1000
    optimizer: str = "adam"
    lr: float = 0.01
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    loss: str = "ce"
    label_smoothing: float = 0.1  # chosen with the augmentations (docs/handwriting.md)
    # none, a name in data.augment.AUGMENTATIONS or a + chain; the default models how
    # people write and how their digits reach us (chosen in experiments/handwriting.py)
    augment: str = "affine2+thickness+ink+lowres"
    mean: float | None = None  # normalisation; None = the dataset's own mean/std
    std: float | None = None
    schedule: str = "onecycle"
    step_size: int = 1  # epochs between decays, for the step schedule
    gamma: float = 0.7  # decay factor, for the step schedule
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

    def validate(self) -> TrainConfig:
        def bad(name: str, what: str, value) -> UsageError:
            return UsageError(f"must be {what}, got {value!r}", option=name)

        choices = {"optimizer": OPTIMIZERS, "loss": LOSSES, "schedule": SCHEDULES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise bad(name, f"one of {', '.join(allowed)}", getattr(self, name))
        positive_ints = ("epochs", "batch_size", "eval_batch_size", "step_size", "log_every")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise bad(name, "at least 1", getattr(self, name))
        if not self.lr > 0:
            raise bad("lr", "greater than 0", self.lr)
        if not 0 <= self.momentum < 1:
            raise bad("momentum", "in [0, 1)", self.momentum)
        if self.weight_decay < 0:
            raise bad("weight_decay", "0 or more", self.weight_decay)
        if not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "in [0, 1)", self.label_smoothing)
        if self.label_smoothing and self.loss != "ce":
            raise UsageError("works with loss ce only", option="label_smoothing")
        if not 0 < self.gamma <= 1:
            raise bad("gamma", "in (0, 1]", self.gamma)
        if self.val_size < 0:
            raise bad("val_size", "0 or more", self.val_size)
        if self.train_subset is not None and self.train_subset < 1:
            raise bad("train_subset", "at least 1", self.train_subset)
        from ..data.augment import AUGMENTATIONS, make_augment

        try:
            make_augment(self.augment)
        except ValueError:
            names = ", ".join(AUGMENTATIONS)
            raise bad(
                "augment", f"none, {names} or a chain like affine2+thickness", self.augment
            ) from None
        if self.std is not None and not self.std > 0:
            raise bad("std", "greater than 0", self.std)
        if self.threads is not None and self.threads < 1:
            raise bad("threads", "at least 1", self.threads)
        return self

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

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


RUNTIME = frozenset(f.name for f in fields(TrainConfig) if f.metadata.get("runtime"))
