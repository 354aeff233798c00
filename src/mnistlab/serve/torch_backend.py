"""A ``Predictor`` from a checkpoint's weights, through torch: the path that needs it.

``serve/predictor.py`` comes here only when the run's own ONNX file cannot answer:
a GPU, ``--tta``, ``--backend torch``, or a checkpoint saved without one. With
``backend`` ``auto`` or ``onnx`` on the CPU the model is exported to ONNX in memory
and run by ONNX Runtime (about 10x faster per digit than torch's eager mode).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import MnistlabError
from ..models import count_params, with_tta
from ..runs.checkpoint import load_checkpoint
from .engine import Predictor, need_onnxruntime, onnx_session

__all__ = ["torch_predictor"]


def torch_predictor(
    checkpoint: Path, device: str, backend: str, threads: int | None, tta: bool
) -> Predictor:
    """The checkpoint's model, run by torch on ``device`` or by ONNX Runtime in memory."""
    model, _ = load_checkpoint(checkpoint, device)
    meta = model.meta
    params = count_params(model)
    if tta:
        model = with_tta(model)
    if backend == "auto":
        exportable = importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime")
        backend = "onnx" if device == "cpu" and exportable else "torch"
    if backend == "onnx":
        if importlib.util.find_spec("onnx") is None:
            raise MnistlabError(
                "the onnx backend for a checkpoint without its ONNX file needs the onnx "
                "package: pip install 'mnistlab[train]'"
            )
        need_onnxruntime("the onnx backend")
        from .export import onnx_graph

        session = onnx_session(onnx_graph(model), threads, checkpoint)
        run = lambda x: session.run(None, {"input": x})[0]  # noqa: E731
        return Predictor(
            meta.name,
            list(meta.class_names),
            meta.mean,
            meta.std,
            run,
            params,
            "onnxruntime",
            meta.reject_threshold,
        )
    if threads and device == "cpu":
        torch.set_num_threads(threads)

    @torch.inference_mode()
    def run_torch(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return Predictor(
        meta.name,
        list(meta.class_names),
        meta.mean,
        meta.std,
        run_torch,
        params,
        reject_threshold=meta.reject_threshold,
    )
