"""The model behind every answer: a ``Predictor``, run by ONNX Runtime or by torch.

``load_predictor`` takes a run folder, a checkpoint (.json/.safetensors) or an
exported .onnx file. A run folder holds ``best.onnx`` beside its weights (written
by calibration, ``analysis/calibrate.py``), its SHA-256 in ``best.json``; ONNX
Runtime runs it on the CPU, and nothing on that path imports torch, so a model is
used with the small install (``pip install mnistlab``). Torch is loaded only where
it is needed: ``--backend torch``, a GPU, ``--tta``, or a checkpoint without its
ONNX file.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MnistlabError, UsageError
from ..models._calibration import check_temperature
from ..models._registry import ENSEMBLE, ModelMeta
from ..runs.manifest import CheckpointError, checked_file, file_entry, read_checkpoint_json
from .engine import (
    META_KEY,
    Predictor,
    has_torch,
    need_torch,
    onnx_metadata,
    onnx_session,
)

__all__ = [
    "BACKENDS",
    "META_KEY",
    "Predictor",
    "load_predictor",
    "need_torch",
    "onnx_metadata",
    "onnx_session",
]

BACKENDS = ("auto", "torch", "onnx")


def load_predictor(
    path: str | os.PathLike,
    device: str = "cpu",
    backend: str = "auto",
    threads: int | None = None,
    tta: bool = False,
) -> Predictor:
    """The model in ``path`` (a run folder, a checkpoint or an exported .onnx file).

    ``backend``: ``auto`` (the run's ONNX file through ONNX Runtime on the CPU when it
    has one, else torch), ``onnx`` (ONNX Runtime: the run's file, or the checkpoint
    exported in memory) or ``torch``. ONNX Runtime takes about 0.02 ms for one digit
    where torch takes 0.2 ms. ``threads``: CPU threads for the model (a server's
    workers split the cores between them). ``tta``: average over shifted and rotated
    views of each digit (``models/_tta.py``; 7x the work; torch)."""
    if backend not in BACKENDS:
        raise UsageError(f"must be auto, torch or onnx, got {backend!r}", option="backend")
    p = Path(path)
    if p.suffix == ".onnx":
        if tta:
            raise UsageError("--tta needs the run folder or checkpoint, not an exported .onnx")
        if not p.is_file():
            raise MnistlabError(f"{p}: file not found")
        return _onnx_predictor(str(p), p, threads)
    doc, jp = read_checkpoint_json(p)
    # the run's ONNX file, where it can answer; --backend torch never reads it
    usable = backend != "torch" and device == "cpu" and not tta
    onnx_file = _checked_onnx(doc, jp) if usable else None
    if onnx_file is not None:
        meta = _run_meta(doc, jp)
        predictor = _onnx_predictor(str(onnx_file), onnx_file, threads, meta.temperature)
        predictor.params = doc.get("parameters")
        predictor.reject_threshold = meta.reject_threshold  # as the JSON says, like torch's
        return predictor
    if backend == "onnx" and device != "cpu":
        raise UsageError("the onnx backend runs on the CPU; use --device cpu", option="backend")
    if not has_torch():
        raise need_torch(_why_torch(backend, device, tta, jp))
    from .torch_backend import torch_predictor

    return torch_predictor(jp, device, backend, threads, tta)


def _why_torch(backend: str, device: str, tta: bool, jp: Path) -> str:
    """What asked for torch, in the words of the command line."""
    if tta:
        return "--tta (it turns each view with torch's grid_sample)"
    if device != "cpu":
        return f"--device {device}"
    if backend == "torch":
        return "--backend torch"
    return f"{jp} names no ONNX export, so using it"


def _checked_onnx(doc: dict, jp: Path) -> Path | None:
    """The checkpoint's ONNX file once it and the weights match their hashes, or None
    where the JSON names none (a checkpoint from before, or one not calibrated) or the
    file is missing and torch can use the weights instead (a checkpoint copied without
    it). A file that is there but differs is refused: stale or tampered."""
    if "onnx" not in doc:
        return None
    checked_file(*file_entry(doc, jp, "weights"))
    path, sha = file_entry(doc, jp, "onnx")
    again = f"mnistlab export {jp.parent} --out {path}"
    if not path.exists():
        if has_torch():
            return None
        raise CheckpointError(
            f"{path}: missing, and torch, which could use the weights instead, is not "
            f"installed; copy the file with the checkpoint, or write it again: {again}"
        )
    try:
        return checked_file(path, sha, "the run's ONNX export")
    except MnistlabError:
        raise CheckpointError(
            f"{path}: does not match {jp.name} (hash differs): it is stale or was changed; "
            f"write it again: {again}"
        ) from None


def _run_meta(doc: dict, jp: Path) -> ModelMeta:
    """The checkpoint's model metadata, checked as loading its weights checks it."""
    try:
        meta = ModelMeta.from_dict(doc.get("model"))
        check_temperature(meta.temperature)  # the range torch's loading checks too
        members = meta.kwargs.get("members") if meta.name == ENSEMBLE else None
        for i, member in enumerate(members if isinstance(members, list) else []):
            try:
                ModelMeta.from_dict(member)
            except MnistlabError as e:
                raise MnistlabError(f"ensemble member {i}: {e}") from None
    except MnistlabError as e:
        raise CheckpointError(
            f"{jp}: {e.cli_message()}; the file was edited or saved by another version: "
            "use the checkpoint as `mnistlab train` saved it, or train again"
        ) from None
    return meta


def _onnx_predictor(
    model: str | bytes, shown_as: Path, threads: int | None, temperature: float | None = None
) -> Predictor:
    """ONNX Runtime's predictor for an ONNX file; ``temperature``: the one its checkpoint's
    JSON holds, which the graph (the logits are divided by it inside) must have too."""
    session = onnx_session(model, threads, shown_as)
    meta = onnx_metadata(session)
    t = check_temperature(meta.get("temperature", 1.0), f"{shown_as}: model.temperature")
    if temperature is not None and t != temperature:
        raise MnistlabError(
            f"{shown_as}: its temperature ({t:g}) is not its checkpoint's ({temperature:g}): "
            f"it is stale; write it again: mnistlab export {shown_as.parent} --out {shown_as}"
        )
    return Predictor(
        meta["name"],
        list(meta["class_names"]),
        meta["mean"],
        meta["std"],
        lambda x: session.run(None, {"input": x})[0],
        backend="onnxruntime",
        reject_threshold=_threshold(meta.get("reject_threshold"), shown_as),
    )


def _threshold(value, shown_as: Path) -> float | None:
    """An ONNX file's stored reject threshold: None, or a number from 0 to 1."""
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (ok and 0 <= value <= 1):
        raise MnistlabError(
            f"{shown_as}: model.reject_threshold must be a number from 0 to 1, got {value!r}"
        )
    return float(value)
