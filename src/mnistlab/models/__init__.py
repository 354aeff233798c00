"""The model zoo. ``create_model(name, **kw)`` and ``list_models()`` are the ways in."""

from . import cnn, inception, lenet, mlp, resnet, vgg  # noqa: F401  (importing registers them)
from ._registry import ModelMeta, create_model, list_models, model_entry

__all__ = ["ModelMeta", "create_model", "list_models", "model_entry"]
