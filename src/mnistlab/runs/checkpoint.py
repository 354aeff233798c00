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

import hashlib
import json
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
from ..models import ENSEMBLE, ModelMeta, create_model
from .folder import json_safe

__all__ = ["CheckpointError", "load_checkpoint", "read_checkpoint_json", "save_checkpoint"]

FORMAT = "mnistlab-checkpoint"
FORMAT_VERSION = 1  # the newest this mnistlab reads and the one it writes
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(MnistlabError):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    # safetensors wants contiguous CPU tensors that share no storage
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    save_file(flat, str(path))  # into a private temp folder: no reader sees it yet
    return _sha256(path)


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


def _json_path(path: str | os.PathLike) -> Path:
    """Accept a run folder (its best checkpoint), a STEM, STEM.json or STEM.safetensors."""
    p = Path(path)
    if p.is_dir() and p.suffix != ".json":  # a folder named best.json is a broken file
        p = p / "best.json"
    elif p.suffix == ".safetensors":
        p = p.with_suffix("")  # STEM or STEM.state
        p = (p.with_suffix("") if p.suffix == ".state" else p).with_suffix(".json")
    elif p.suffix != ".json":
        p = p.with_suffix(".json")
    return p


def read_checkpoint_json(path: str | os.PathLike) -> tuple[dict, Path]:
    jp = _json_path(path)
    if not jp.is_file():
        raise CheckpointError(_missing(path, jp))
    try:
        doc = json.loads(jp.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{jp}: not valid JSON ({e})") from None
    except RecursionError:  # nested deeper than any checkpoint is
        raise CheckpointError(f"{jp}: not an mnistlab checkpoint (nested too deep)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{jp}: not an mnistlab checkpoint")
    version = doc.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise CheckpointError(
            f"{jp}: saved by a newer mnistlab (checkpoint format {version}, this one reads "
            f"{FORMAT_VERSION}); upgrade mnistlab (pip install -U mnistlab) to use it"
        )
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise CheckpointError(
            f"{jp}: unknown checkpoint format_version {version!r}; the file was edited or "
            "damaged: use the checkpoint as `mnistlab train` saved it, or train again"
        )
    return doc, jp


def _missing(path: str | os.PathLike, jp: Path) -> str:
    """Why there is no checkpoint JSON ``jp`` for ``path``, and what to do."""
    run = jp.parent
    if jp.exists():  # there, but not a file (a folder in its place)
        return f"{jp} is not a file; restore the checkpoint, or train the run again"
    if jp.name in ("best.json", "last.json") and (run / "config.json").is_file():
        if (run / "last.json").is_file():
            return (
                f"run folder {run} has no {jp.name} yet; resume it: mnistlab train --resume {run}"
            )
        return (
            f"run folder {run} holds no checkpoint: training stopped before its first one; "
            "train it again"
        )
    where = "pass a run folder from `mnistlab train` or a .json/.safetensors checkpoint"
    if not os.path.lexists(path):
        return f"no checkpoint at {path}: no such folder or file; {where}"
    return f"no checkpoint at {path} ({jp.name} not found); {where}"


def _file_entry(doc: dict, jp: Path, key: str) -> tuple[Path, str]:
    """The file ``doc[key]`` names beside ``jp``, and the SHA-256 it must have.

    Both are required: without the hash the file could not be checked, and a
    checkpoint is never used unchecked. The name is a plain file name beside the
    JSON, never a path elsewhere.
    """
    name, sha = doc.get(key), doc.get(f"{key}_sha256")
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise CheckpointError(
            f"{jp}: {key} must name a file beside it, got {name!r}; the file was edited: "
            "use the checkpoint as `mnistlab train` saved it, or train again"
        )
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise CheckpointError(
            f"{jp}: has no valid {key}_sha256, so {name} cannot be checked and is not "
            "loaded; use the checkpoint as `mnistlab train` saved it, or train again"
        )
    return jp.parent / name, sha


def _load_tensors(path: Path, sha: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        why = "not a file" if path.exists() else "missing"
        raise CheckpointError(
            f"{path}: {why}; the checkpoint is incomplete: restore it or train again"
        )
    if _sha256(path) != sha:
        raise CheckpointError(
            f"{path}: does not match its JSON (hash differs); it was changed or only partly saved"
        )
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
    weights = _file_entry(doc, jp, "weights")
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
    state = _load_tensors(*_file_entry(doc, jp, "state"))
    return model, doc, state
