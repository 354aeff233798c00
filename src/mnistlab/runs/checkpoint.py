"""Checkpoints: safetensors weights plus a JSON file. Nothing here ever unpickles.

A checkpoint ``STEM`` is ``STEM.safetensors`` (the model's tensors) and ``STEM.json``
(model name and kwargs, dataset, normalisation, class names, the train config,
metrics, versions and the weights' SHA-256). A resumable checkpoint adds
``STEM.state.safetensors``: optimiser tensors and the RNG state. The JSON names
the hashes of the others, and all are written in a temp folder and renamed into
place with the JSON last, so a save cut short is detected on load rather than
half-used.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .._io import atomic_write_json, staged_files
from .._version import __version__
from ..errors import MnistlabError
from ..models import ENSEMBLE, ModelMeta, count_params, create_model
from .folder import json_safe
from .manifest import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    checked_file,
    file_entry,
    file_sha256,
    read_checkpoint_json,
)

__all__ = ["CheckpointError", "load_checkpoint", "read_checkpoint_json", "save_checkpoint"]


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    # safetensors wants contiguous CPU tensors that share no storage
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    save_file(flat, str(path))  # into a private temp folder: no reader sees it yet
    return file_sha256(path)


def save_checkpoint(
    stem: str | os.PathLike,
    model: nn.Module,
    info: dict | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``stem.safetensors`` (+ ``stem.state.safetensors``) and ``stem.json``.

    ``info`` is merged into the JSON (config, metrics, dataset, resume position ...).
    All are written in a temp folder beside them first, then renamed into place, the
    JSON last: a kill while writing leaves the old checkpoint whole, and one between
    the renames leaves a JSON whose hashes refuse the newer weights (never the
    other way round).
    """
    stem = Path(stem)
    meta: ModelMeta = model.meta
    weights, json_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    with staged_files(stem.parent, stem.name, last=json_path.name) as tmp:
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": meta.to_dict(),
            "weights": weights.name,
            "weights_sha256": _save_tensors(tmp / weights.name, model.state_dict()),
            "parameters": count_params(model),
            "mnistlab_version": __version__,
            "torch_version": torch.__version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if state is not None:
            state_path = stem.with_suffix(".state.safetensors")
            doc["state"] = state_path.name
            doc["state_sha256"] = _save_tensors(tmp / state_path.name, state)
        doc.update(info or {})
        atomic_write_json(tmp / json_path.name, json_safe(doc))
    return json_path


def _load_tensors(path: Path, sha: str) -> dict[str, torch.Tensor]:
    checked_file(path, sha)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def _misfit(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> str:
    """What differs between two state dicts, briefly: counts and the first key of each kind."""
    kinds = {
        "missing": [k for k in expected if k not in got],
        "unexpected": [k for k in got if k not in expected],
        "of another shape": [k for k in expected if k in got and got[k].shape != expected[k].shape],
    }
    return ", ".join(f"{len(v)} {kind}, e.g. {v[0]!r}" for kind, v in kinds.items() if v)


def _ensemble_misfit(jp: Path, model: nn.Module, tensors: dict[str, torch.Tensor]) -> str:
    """Why an ensemble's weights do not fit the members its JSON lists. ``mnistlab
    ensemble`` writes both from the same members, so this is an edit or damage (a
    member removed or changed), not an older version of a model."""
    held = {k.split(".", 2)[1] for k in tensors if k.startswith("members.")}
    listed = len(model.members)
    count = ""
    if listed != len(held):
        count = f"it lists {listed} member{'s' * (listed != 1)}, its weights hold {len(held)}; "
    return (
        f"{jp}: the members listed in it do not match its weights ({count}"
        f"{_misfit(model.state_dict(), tensors)}); the file was edited or damaged: "
        "build the ensemble again with `mnistlab ensemble`"
    )


_NUMBERED_KEY = re.compile(r"^(\d+)\.(\w+)$")  # "7.weight": a layer of a numbered nn.Sequential


def _renamed_from_numbered(
    saved: dict[str, torch.Tensor], model: nn.Module
) -> dict[str, torch.Tensor] | None:
    """``saved`` under ``expected``'s names, if it is the same network with numbered layers.

    Why: models used to be plain ``nn.Sequential``s, whose layers are named by position
    (``0.weight``, ``3.bias``); they are named now (``conv1.weight``, ``conv2.bias``), which
    changed the tensor names but not the network. Checkpoints saved before still load if
    their layers line up with the model's one by one: each numbered layer at the
    position of the named one (so an older ``fast``, whose BatchNorm sat before the
    pooling, is still refused), with the same tensor names (weight, bias,
    running_mean ...) and shapes. Anything else is not renamed (``None``).
    """
    expected = model.state_dict()
    position = {name: i for i, (name, _) in enumerate(model.named_children())}
    old: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in saved.items():
        m = _NUMBERED_KEY.match(key)
        if m is None:
            return None
        old.setdefault(int(m[1]), {})[m[2]] = tensor
    new: dict[str, list[str]] = {}  # layer -> its tensor names, in state_dict (= module) order
    for key in expected:
        layer, _, name = key.rpartition(".")
        new.setdefault(layer, []).append(name)
    if len(saved) != len(expected) or len(old) != len(new):
        return None
    renamed = {}
    for (index, tensors), (layer, names) in zip(sorted(old.items()), new.items(), strict=True):
        if position.get(layer) != index or set(tensors) != set(names):
            return None
        for name in names:
            key = f"{layer}.{name}" if layer else name
            if tensors[name].shape != expected[key].shape:
                return None
            renamed[key] = tensors[name]
    return renamed


def load_checkpoint(
    path: str | os.PathLike, device: torch.device | str = "cpu", with_state: bool = False
):
    """Rebuild the model from a checkpoint: returns ``(model, doc)`` or, with
    ``with_state``, ``(model, doc, state_tensors)``. The model is in eval mode."""
    doc, jp = read_checkpoint_json(path)
    weights = file_entry(doc, jp, "weights")
    try:
        meta = ModelMeta.from_dict(doc.get("model"))
        model = create_model(
            meta.name,
            mean=meta.mean,
            std=meta.std,
            class_names=meta.class_names,
            temperature=meta.temperature,
            **meta.kwargs,
        )
        model.meta.reject_threshold = meta.reject_threshold  # set by calibration
    except MnistlabError as e:
        raise CheckpointError(
            f"{jp}: {e.cli_message()}; the file was edited or saved by another version: "
            "use the checkpoint as `mnistlab train` saved it, or train again"
        ) from None
    tensors = _load_tensors(*weights)
    if tensors.keys() != model.state_dict().keys():  # perhaps saved before layers had names
        renamed = _renamed_from_numbered(tensors, model)
        tensors = tensors if renamed is None else renamed
    try:
        model.load_state_dict(tensors)
    except RuntimeError:
        if meta.name == ENSEMBLE:
            raise CheckpointError(_ensemble_misfit(jp, model, tensors)) from None
        raise CheckpointError(
            f"{jp}: weights do not fit model {meta.name!r} as this mnistlab builds it "
            f"({_misfit(model.state_dict(), tensors)}); it was probably saved by an older "
            "version of the model: retrain it"
        ) from None
    model.to(device).eval()
    if not with_state:
        return model, doc
    if "state" not in doc:
        raise CheckpointError(f"{jp}: holds no training state to resume from")
    state = _load_tensors(*file_entry(doc, jp, "state"))
    return model, doc, state
