"""Export a checkpoint to ONNX or TorchScript, with its metadata inside the file.

The ONNX file carries ``mnistlab`` metadata (model name, class names, mean/std)
in its ``metadata_props``, so ``mnistlab predict model.onnx`` needs nothing else.
Exporting needs torch and onnx (``pip install 'mnistlab[train]'``); running the
file needs neither (``predictor.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .._io import atomic_write
from ..errors import MnistlabError
from .engine import META_KEY

__all__ = ["export_beside", "export_onnx", "export_torchscript", "onnx_bytes", "onnx_graph"]


def _meta_json(model: nn.Module) -> str:
    return json.dumps(model.meta.to_dict())


def onnx_graph(model: nn.Module) -> bytes:
    """``model`` as ONNX (opset 17, dynamic batch; input ``input``, output ``logits``), in
    memory. The TorchScript-based exporter needs only ``onnx``; the newer one onnxscript."""
    model = model.cpu().eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes
        torch.onnx.export(
            model,
            (torch.zeros(2, *model.meta.input_size),),
            buf,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            opset_version=17,
            dynamo=False,
        )
    return buf.getvalue()


def onnx_bytes(model: nn.Module) -> bytes:
    """``model`` as an ONNX file (``onnx_graph``), its metadata inside: the bytes."""
    try:
        import onnx
    except ImportError:
        raise MnistlabError(
            "ONNX export needs the onnx package: pip install 'mnistlab[train]'"
        ) from None
    proto = onnx.load_from_string(onnx_graph(model))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, _meta_json(model)
    return proto.SerializeToString()


def export_onnx(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` as ONNX (``onnx_graph``), with its metadata inside the file."""
    data = onnx_bytes(model)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def export_beside(model: nn.Module, checkpoint_json: str | os.PathLike, doc: dict) -> Path:
    """Write ``STEM.onnx`` beside the checkpoint ``STEM.json`` and record its name and
    SHA-256 in ``doc``, the checkpoint's JSON, which the caller writes next: a kill
    between the two leaves a JSON whose hash refuses the newer file, never the reverse.
    ``mnistlab predict`` and ``serve`` use the file without torch (``predictor.py``)."""
    path = Path(checkpoint_json).with_suffix(".onnx")
    data = onnx_bytes(model)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    doc["onnx"], doc["onnx_sha256"] = path.name, hashlib.sha256(data).hexdigest()
    return path


def export_torchscript(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write a traced TorchScript module; the metadata is the extra file ``mnistlab.json``."""
    model = model.cpu().eval()
    x = torch.zeros(2, *model.meta.input_size)
    files = {f"{META_KEY}.json": _meta_json(model)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, not gone
        traced = torch.jit.trace(model, x)
        return atomic_write(path, lambda tmp: torch.jit.save(traced, str(tmp), _extra_files=files))
