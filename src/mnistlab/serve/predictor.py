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

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.normalize import normalize_array
from ..errors import MnistlabError, UsageError
from ..models._calibration import check_temperature
from ..models._registry import ENSEMBLE, ModelMeta
from ..models._reject import digit_scores, is_digit
from ..runs.manifest import CheckpointError, checked_file, file_entry, read_checkpoint_json

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


def onnx_metadata(session) -> dict:
    """The mnistlab metadata stored in an ONNX Runtime session's model."""
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        raise MnistlabError("this ONNX file was not exported by mnistlab (no metadata)")
    return json.loads(props[META_KEY])


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
