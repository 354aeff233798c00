"""Export a checkpoint to ONNX or TorchScript, with its metadata inside the file.

The ONNX file carries ``mnistlab`` metadata (model name, class names, mean/std)
in its ``metadata_props``, so ``mnistlab predict model.onnx`` needs nothing else.
ONNX needs the optional ``export`` dependencies: ``pip install 'mnistlab[export]'``.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .._io import atomic_write
from ..errors import MnistlabError

__all__ = ["export_onnx", "export_torchscript", "onnx_graph", "onnx_metadata"]

META_KEY = "mnistlab"


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


def export_onnx(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` as ONNX (``onnx_graph``), with its metadata inside the file."""
    try:
        import onnx
    except ImportError:
        raise MnistlabError(
            "ONNX export needs the export extras: pip install 'mnistlab[export]'"
        ) from None
    proto = onnx.load_from_string(onnx_graph(model))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, _meta_json(model)
    return atomic_write(path, lambda tmp: onnx.save(proto, str(tmp)))


def export_torchscript(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write a traced TorchScript module; the metadata is the extra file ``mnistlab.json``."""
    model = model.cpu().eval()
    x = torch.zeros(2, *model.meta.input_size)
    files = {f"{META_KEY}.json": _meta_json(model)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, not gone
        traced = torch.jit.trace(model, x)
        return atomic_write(path, lambda tmp: torch.jit.save(traced, str(tmp), _extra_files=files))


def onnx_metadata(session) -> dict:
    """The mnistlab metadata stored in an ONNX Runtime session's model."""
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        raise MnistlabError("this ONNX file was not exported by mnistlab (no metadata)")
    return json.loads(props[META_KEY])
