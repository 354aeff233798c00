"""The model registry, after timm's: ``create_model(name, **kw)`` and ``list_models()``.

Each family file registers small constructor functions with ``@register_model``.
Every model obeys one contract: input ``(N, 1, 28, 28)`` normalised with the
dataset's mean/std, output logits ``(N, num_classes)``. ``create_model`` attaches a
:class:`ModelMeta` as ``model.meta``; it travels into every checkpoint.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import math
import pkgutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..data.normalize import MNIST_MEAN, MNIST_STD
from ..errors import MnistlabError, UsageError

if TYPE_CHECKING:  # models are built by the family modules: the metadata needs no torch
    from torch import nn

__all__ = [
    "ModelMeta",
    "count_params",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
]

DIGITS = tuple(str(i) for i in range(10))
MAX_WIDTH = 4096  # the largest size setting (width, hidden) a model accepts
ENSEMBLE = "ensemble"  # not in the zoo: `mnistlab ensemble RUN...` makes one from runs


@dataclass(frozen=True)
class ModelEntry:
    name: str
    fn: Callable[..., nn.Module]
    family: str
    source: str
    description: str


@dataclass
class ModelMeta:
    """What a model needs to be used correctly, saved with every checkpoint."""

    name: str
    kwargs: dict = field(default_factory=dict)
    input_size: tuple[int, int, int] = (1, 28, 28)
    mean: float = MNIST_MEAN
    std: float = MNIST_STD
    class_names: tuple[str, ...] = DIGITS
    source: str = ""
    # logits are divided by it before any probability is shown (models/_calibration.py)
    temperature: float = 1.0
    # an image whose digit score (models/_reject.py) is below this is "not a digit";
    # None: the model never says so (checkpoints from before the reject option)
    reject_threshold: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"], d["class_names"] = list(self.input_size), list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelMeta:
        """The metadata saved by ``to_dict``; a ``MnistlabError`` says which field is wrong."""

        def bad(what: str, value) -> MnistlabError:
            return MnistlabError(f"model.{what}, got {value!r}")

        if not isinstance(d, dict):
            raise MnistlabError(f"model must be an object, got {d!r}")
        name, kwargs = d.get("name"), d.get("kwargs", {})
        if not isinstance(name, str):
            raise bad("name must be a model name", name)
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise bad("kwargs must be an object of arguments", kwargs)
        mean, std = d.get("mean", MNIST_MEAN), d.get("std", MNIST_STD)
        if not _is_real(mean):
            raise bad("mean must be a finite number", mean)
        if not (_is_real(std) and std > 0):
            raise bad("std must be a finite number above 0", std)
        names = d.get("class_names", DIGITS)
        if not isinstance(names, (list, tuple)) or len(names) < 2:
            raise bad("class_names must be a list of at least 2 names", names)
        if not all(isinstance(n, str) for n in names):
            raise bad("class_names must be names (text)", names)
        size = d.get("input_size", (1, 28, 28))
        if not isinstance(size, (list, tuple)) or tuple(size) != (1, 28, 28):
            raise bad("input_size must be [1, 28, 28]", size)
        source = d.get("source", "")
        temperature = d.get("temperature", 1.0)
        if not (_is_real(temperature) and temperature > 0):
            raise bad("temperature must be a finite number above 0", temperature)
        threshold = d.get("reject_threshold")
        if threshold is not None and not (_is_real(threshold) and 0 <= threshold <= 1):
            raise bad("reject_threshold must be a number from 0 to 1, or null", threshold)
        return cls(
            name=name,
            kwargs=dict(kwargs),
            input_size=(1, 28, 28),
            mean=float(mean),
            std=float(std),
            class_names=tuple(names),
            source=source if isinstance(source, str) else "",
            temperature=float(temperature),
            reject_threshold=None if threshold is None else float(threshold),
        )


def _is_real(value) -> bool:
    """A finite int or float (not a bool, not a string)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok and math.isfinite(value)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, source: str, description: str = ""):
    """Register a constructor under the name the CLI uses."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        family = fn.__module__.rsplit(".", 1)[-1]
        doc = description or (fn.__doc__ or "").strip().splitlines()[0]
        _REGISTRY[name] = ModelEntry(name, fn, family, source, doc)
        return fn

    return wrap


def _load_families() -> None:
    """Import every family module of this package (a name not starting with ``_``):
    their ``@register_model`` fill the registry. Done on the first lookup, so that
    importing the package, or a torch-free part of it, loads no model."""
    global _FAMILIES_LOADED
    if _FAMILIES_LOADED:
        return
    _FAMILIES_LOADED = True
    package = __name__.rpartition(".")[0]
    for family in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not family.name.startswith("_"):
            importlib.import_module(f"{package}.{family.name}")


_FAMILIES_LOADED = False


def list_models(pattern: str | None = None) -> list[str]:
    _load_families()
    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def model_entry(name: str) -> ModelEntry:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown model {name!r}; choose one of: {', '.join(list_models())} "
            "(see `mnistlab models`)"
        ) from None


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    mean: float = MNIST_MEAN,
    std: float = MNIST_STD,
    class_names: tuple[str, ...] | list[str] = DIGITS,
    temperature: float = 1.0,
    **kwargs,
) -> nn.Module:
    """Build model ``name``; ``kwargs`` go to its constructor and are recorded in ``model.meta``.

    ``temperature``: a calibrated model's (``models/_calibration.py``). ``"ensemble"``
    builds an ensemble from its members' metadata (``models/_ensemble.py``)."""
    from ._calibration import set_temperature

    class_names = tuple(class_names)
    if name == ENSEMBLE:
        model = _build_ensemble(class_names, mean, std, **kwargs)
        return set_temperature(model, temperature)
    entry = model_entry(name)
    if num_classes is not None and num_classes != len(class_names):
        raise MnistlabError(f"num_classes={num_classes} but {len(class_names)} class names given")
    _check_kwargs(entry, kwargs)
    try:
        model = entry.fn(num_classes=len(class_names), **kwargs)
    except MnistlabError:
        raise
    except (TypeError, ValueError) as e:
        raise UsageError(f"model {name!r}: {e}") from None
    model.meta = ModelMeta(
        name=name,
        kwargs=dict(kwargs),
        mean=mean,
        std=std,
        class_names=class_names,
        source=entry.source,
    )
    return set_temperature(model, temperature)


MAX_MEMBERS = 64  # an ensemble's


def _build_ensemble(
    class_names: tuple[str, ...], mean: float, std: float, members: list | None = None
) -> nn.Module:
    """The ensemble of ``members`` (``ModelMeta`` dicts), each rebuilt untrained."""
    from ._ensemble import Ensemble

    if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
        raise MnistlabError(f"an ensemble needs a list of 1 to {MAX_MEMBERS} members")
    built = []
    for i, d in enumerate(members):
        try:
            meta = ModelMeta.from_dict(d)
        except MnistlabError as e:
            raise MnistlabError(f"ensemble member {i}: {e}") from None
        if meta.name == ENSEMBLE:
            raise MnistlabError(f"ensemble member {i} is an ensemble; give its members instead")
        if tuple(meta.class_names) != tuple(class_names):
            raise MnistlabError(
                f"ensemble member {i} ({meta.name}) has classes {list(meta.class_names)}, "
                f"not {list(class_names)}: members must classify the same classes"
            )
        built.append(
            create_model(
                meta.name,
                mean=meta.mean,
                std=meta.std,
                class_names=meta.class_names,
                temperature=meta.temperature,
                **meta.kwargs,
            )
        )
    model = Ensemble(built, mean, std)
    model.meta = ModelMeta(
        name=ENSEMBLE,
        kwargs={"members": [m.meta.to_dict() for m in built]},
        mean=mean,
        std=std,
        class_names=tuple(class_names),
        source=f"mnistlab ensemble: the mean of {len(built)} members' probabilities",
    )
    return model


def _check_kwargs(entry: ModelEntry, kwargs: dict) -> None:
    """A ``UsageError`` naming the arguments ``entry`` takes, for one it does not."""
    sig = inspect.signature(entry.fn).parameters
    params = [p for p in sig if p != "num_classes"]
    for key, value in kwargs.items():
        if key not in params:
            takes = f"takes only {', '.join(params)}" if params else "takes no arguments"
            raise UsageError(
                f"model {entry.name!r}: bad arguments {kwargs}: no setting {key!r}; it {takes}"
            )
        kind = str(sig[key].annotation)
        if kind == "int" and not (
            isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_WIDTH
        ):
            raise UsageError(
                f"model {entry.name!r}: {key} must be a whole number from 1 to {MAX_WIDTH}, "
                f"got {value!r}"
            )
        if kind == "str" and not isinstance(value, str):
            raise UsageError(f"model {entry.name!r}: {key} must be text, got {value!r}")


def count_params(model: nn.Module) -> int:
    """All parameters of ``model``, trainable or not."""
    return sum(p.numel() for p in model.parameters())
