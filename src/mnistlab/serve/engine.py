"""What runs a model: the ``Predictor`` every answer comes from, and ONNX Runtime's
sessions. Torch-free; ``serve/predictor.py`` (which file to load, and how) and
``serve/torch_backend.py`` (the torch path) both build on it.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.normalize import normalize_array
from ..errors import MnistlabError
from ..models._reject import digit_scores, is_digit

__all__ = [
    "META_KEY",
    "Predictor",
    "has_torch",
    "need_onnxruntime",
    "need_torch",
    "onnx_metadata",
    "onnx_session",
]

META_KEY = "mnistlab"  # the ONNX file's metadata_props entry: ModelMeta as JSON
INSTALL_TORCH = "pip install 'mnistlab[train]'"


@dataclass
class Predictor:
    name: str
    class_names: list[str]
    mean: float
    std: float
    run: object  # callable: float32 (N, 1, 28, 28) normalised -> logits (N, C) numpy
    params: int | None = None  # the model's parameter count, where known
    backend: str = "torch"  # or "onnxruntime"
    # digit scores below it are "not a digit" (models/_reject.py); None: never
    reject_threshold: float | None = None

    def judge(self, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(probs (N, C), digit scores (N,), is a digit (N,))`` for uint8 digits."""
        probs = self.probs(digits)
        scores = digit_scores(probs)
        return probs, scores, is_digit(scores, self.reject_threshold)

    def probs(self, digits: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``(N, C)`` for uint8 digits ``(N, 28, 28)``."""
        x = normalize_array(digits[:, None], self.mean, self.std)  # (N, 1, 28, 28)
        logits = np.asarray(self.run(x), dtype=np.float64)
        e = np.exp(logits - logits.max(1, keepdims=True))
        probs = e / e.sum(1, keepdims=True)
        if not np.isfinite(probs).all():  # NaN weights, or a graph exported broken
            raise MnistlabError(
                f"model {self.name!r} gave NaN or infinite probabilities: it is broken; "
                "export or train it again",
                kind="model_failure",
            )
        return probs


def need_torch(what: str) -> MnistlabError:
    """The one-line error for a feature that needs PyTorch where it is not installed."""
    error = MnistlabError(f"{what} needs PyTorch, which is not installed: {INSTALL_TORCH}")
    error.exit_code = 2  # the install, not the input, is what to change
    return error


def has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def onnx_metadata(session) -> dict:
    """The mnistlab metadata stored in an ONNX Runtime session's model."""
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        raise MnistlabError("this ONNX file was not exported by mnistlab (no metadata)")
    return json.loads(props[META_KEY])


def need_onnxruntime(what: str) -> None:
    if importlib.util.find_spec("onnxruntime") is None:
        raise MnistlabError(f"{what} needs ONNX Runtime: pip install onnxruntime")


def onnx_session(model: str | bytes, threads: int | None, shown_as: Path):
    need_onnxruntime("running an ONNX model")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise MnistlabError(f"{shown_as}: not a readable ONNX model ({type(e).__name__})") from None
