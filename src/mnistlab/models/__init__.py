"""The model zoo. ``create_model(name, **kw)`` and ``list_models()`` are the ways in.

Every module in this folder whose name does not start with ``_`` is a model
family; the registry imports them all on its first lookup, which registers their
models: adding a model is one new file with ``@register_model`` on its constructor.
The names below load on first use (``_imports.py``), so the torch-free parts
(``_reject.py``) can be imported without PyTorch.
"""

from .._imports import lazy_exports

_EXPORTS = {
    "ENSEMBLE": "._registry",
    "Ensemble": "._ensemble",
    "ModelMeta": "._registry",
    "TestTimeAugmentation": "._tta",
    "count_params": "._registry",
    "create_model": "._registry",
    "fit_temperature": "._calibration",
    "list_models": "._registry",
    "model_entry": "._registry",
    "set_temperature": "._calibration",
    "with_tta": "._tta",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
