"""Using a trained model: preprocessing your own images, predicting, exporting, the web app."""

from .export import export_onnx, export_torchscript
from .predict import Predictor, load_predictor, predict_files
from .preprocess import PreprocessError, load_digit, to_mnist

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
