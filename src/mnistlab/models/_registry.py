"""The model registry, after timm's: ``create_model(name, **kw)`` and ``list_models()``.

Each family file registers small constructor functions with ``@register_model``.
Every model obeys one contract: input ``(N, 1, 28, 28)`` normalised with the
dataset's mean/std, output logits ``(N, num_classes)``. ``create_model`` attaches a
:class:`ModelMeta` as ``model.meta``; it travels into every checkpoint.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from torch import nn

from ..data.normalize import MNIST_MEAN, MNIST_STD
from ..errors import MnistlabError, UsageError

__all__ = [
    "ModelMeta",
    "count_params",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
]

DIGITS = tuple(str(i) for i in range(10))


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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"], d["class_names"] = list(self.input_size), list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelMeta:
        return cls(
            name=d["name"],
            kwargs=dict(d.get("kwargs", {})),
            input_size=tuple(d.get("input_size", (1, 28, 28))),
            mean=float(d.get("mean", MNIST_MEAN)),
            std=float(d.get("std", MNIST_STD)),
            class_names=tuple(d.get("class_names", DIGITS)),
            source=d.get("source", ""),
        )


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


def list_models(pattern: str | None = None) -> list[str]:
    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def model_entry(name: str) -> ModelEntry:
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
    **kwargs,
) -> nn.Module:
    """Build model ``name``; ``kwargs`` go to its constructor and are recorded in ``model.meta``."""
    entry = model_entry(name)
    class_names = tuple(class_names)
    if num_classes is not None and num_classes != len(class_names):
        raise MnistlabError(f"num_classes={num_classes} but {len(class_names)} class names given")
    try:
        model = entry.fn(num_classes=len(class_names), **kwargs)
    except TypeError as e:
        raise UsageError(f"model {name!r}: bad arguments {kwargs} ({e})") from None
    model.meta = ModelMeta(
        name=name,
        kwargs=dict(kwargs),
        mean=mean,
        std=std,
        class_names=class_names,
        source=entry.source,
    )
    return model


def count_params(model: nn.Module) -> int:
    """All parameters of ``model``, trainable or not."""
    return sum(p.numel() for p in model.parameters())
