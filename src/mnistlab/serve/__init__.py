"""Using a trained model: preprocessing your own images, predicting, exporting, the web app.

Predicting needs no torch (``predictor.py``); exporting does, so its names load on
first use (``_imports.py``).
"""

from .._imports import lazy_exports
from .predict import Predictor, load_predictor, predict_files
from .preprocess import PreprocessError, load_digit, to_mnist

_EXPORTS = {"export_onnx": ".export", "export_torchscript": ".export"}

__all__ = [
    "Predictor",
    "PreprocessError",
    "export_onnx",
    "export_torchscript",
    "load_digit",
    "load_predictor",
    "predict_files",
    "to_mnist",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
