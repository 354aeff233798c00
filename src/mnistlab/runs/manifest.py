"""A checkpoint's JSON and the files it names, checked by hash: no torch needed.

``STEM.json`` names ``STEM.safetensors`` (the weights) and their SHA-256, and may name
``STEM.state.safetensors`` (training state) and ``STEM.onnx`` (the model exported for
ONNX Runtime, written at the end of training, ``mnistlab ensemble`` and ``mnistlab
calibrate``) with theirs. A file is never used unless its hash matches: a damaged,
stale or tampered one is refused with one line. Using a model through its ONNX file
needs only this module, never torch (``serve/predictor.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ..errors import MnistlabError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "checked_file",
    "file_entry",
    "file_sha256",
    "json_path",
    "read_checkpoint_json",
]

FORMAT = "mnistlab-checkpoint"
FORMAT_VERSION = 1  # the newest this mnistlab reads and the one it writes
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(MnistlabError):
    pass


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def json_path(path: str | os.PathLike) -> Path:
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
    jp = json_path(path)
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


def file_entry(doc: dict, jp: Path, key: str) -> tuple[Path, str]:
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


def checked_file(path: Path, sha: str, what: str = "the checkpoint") -> Path:
    """``path``, once it is there and its SHA-256 is ``sha``; else one line saying why."""
    if not path.is_file():
        why = "not a file" if path.exists() else "missing"
        raise CheckpointError(f"{path}: {why}; {what} is incomplete: restore it or train again")
    if file_sha256(path) != sha:
        raise CheckpointError(
            f"{path}: does not match its JSON (hash differs); it was changed or only partly saved"
        )
    return path
