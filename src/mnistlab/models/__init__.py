"""The model zoo. ``create_model(name, **kw)`` and ``list_models()`` are the ways in.

Every module in this folder whose name does not start with ``_`` is a model
family and is imported here, which registers its models: adding a model is one
new file with ``@register_model`` on its constructor.
"""

import importlib
import pkgutil

from ._calibration import fit_temperature, set_temperature
from ._ensemble import Ensemble
from ._registry import ENSEMBLE, ModelMeta, count_params, create_model, list_models, model_entry
from ._tta import TestTimeAugmentation, with_tta

__all__ = [
    "ENSEMBLE",
    "Ensemble",
    "ModelMeta",
    "TestTimeAugmentation",
    "count_params",
    "create_model",
    "fit_temperature",
    "list_models",
    "model_entry",
    "set_temperature",
    "with_tta",
]

for _family in pkgutil.iter_modules(__path__):
    if not _family.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_family.name}")
