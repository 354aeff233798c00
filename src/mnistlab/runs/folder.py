"""The run folder: the one owner of its layout.

A run folder, as ``fit`` writes it::

    config.json                 the full TrainConfig
    metrics.jsonl               one JSON record per log step and per epoch
    best.safetensors + .json    the weights chosen on validation, and their metadata
    last.safetensors + .json    the latest weights, with
    last.state.safetensors      optimiser, scheduler and RNG state, for resuming

Analysis adds ``curves.png``, ``eval/`` and ``report.html``. Every command that
takes "a run folder or a checkpoint" resolves it with :func:`checkpoint_json`.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from .._io import atomic_write, atomic_write_json
from ..errors import MnistlabError, UsageError

__all__ = [
    "CONFIG",
    "METRICS",
    "NotARunFolder",
    "append_metrics",
    "checkpoint_json",
    "epoch_records",
    "is_finished",
    "json_line",
    "json_safe",
    "new_run_dir",
    "output_dir",
    "read_config",
    "read_metrics",
    "require_run_folder",
    "rewrite_metrics",
    "write_config",
]

CONFIG, METRICS = "config.json", "metrics.jsonl"
CHECKPOINTS = ("best", "last")


class NotARunFolder(MnistlabError):
    pass


def require_run_folder(path: str | os.PathLike) -> Path:
    """``path`` as a run folder, or a one-line error saying it is not one."""
    run = Path(path)
    if not run.exists():
        raise NotARunFolder(f"{run}: not a run folder: no such folder; check the path")
    if not run.is_dir():
        raise NotARunFolder(f"{run}: a file, not a run folder; give the folder `train` wrote")
    if not (run / CONFIG).is_file():
        raise NotARunFolder(f"{run}: not a run folder (no {CONFIG}); check the path")
    return run


def checkpoint_json(path: str | os.PathLike, which: str = "best") -> Path:
    """The checkpoint a user means: a run folder's ``which`` one, or the file given."""
    if which not in CHECKPOINTS:
        raise UsageError(f"must be best or last, got {which!r}", option="which")
    p = Path(path)
    return p / f"{which}.json" if p.is_dir() else p


def output_dir(path: str | os.PathLike, name: str) -> Path:
    """Where a command writes its pictures: ``RUN/name``, or beside a checkpoint file."""
    p = Path(path)
    return (p if p.is_dir() else p.parent) / name


def new_run_dir(out_dir: str | os.PathLike, name: str) -> Path:
    """Create ``out_dir/name`` (``name-2``, ``name-3`` ... if taken) and return it."""
    base = Path(out_dir) / name
    run_dir, i = base, 1
    while run_dir.exists():
        i += 1
        run_dir = base.with_name(f"{base.name}-{i}")
    try:
        run_dir.mkdir(parents=True)
    except OSError as e:
        raise MnistlabError(
            f"cannot create run folder {run_dir} ({e.strerror}); choose another output folder"
        ) from None
    return run_dir


def default_run_name(model: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{model}"


def json_safe(obj):
    """``obj`` with nan and infinities as None: JSON has no word for them, and a bare
    ``NaN`` makes the file unreadable to anything but Python."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def json_line(record: dict) -> str:
    """One line of ``metrics.jsonl``: strict JSON, newline included."""
    return json.dumps(json_safe(record), allow_nan=False) + "\n"


def write_config(run_dir: Path, config: dict) -> None:
    atomic_write_json(run_dir / CONFIG, json_safe(config))


def read_config(run_dir: str | os.PathLike) -> dict:
    path = require_run_folder(run_dir) / CONFIG
    return _read_json_object(path, "restore it or train again")


def _read_json_object(path: Path, fix: str) -> dict:
    """The JSON object in ``path``, or a one-line error naming it and saying ``fix``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MnistlabError(f"{path}: not valid JSON ({e}); {fix}") from None
    except RecursionError:  # nested deeper than any file we write
        raise MnistlabError(f"{path}: not valid JSON (nested too deep); {fix}") from None
    if not isinstance(doc, dict):
        raise MnistlabError(f"{path}: not a JSON object; {fix}")
    return doc


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The records of ``metrics.jsonl``; a line cut short by a crash is skipped."""
    path = Path(run_dir) / METRICS
    records = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def epoch_records(run_dir: str | os.PathLike) -> list[dict]:
    return [r for r in read_metrics(run_dir) if r.get("type") == "epoch"]


def append_metrics(run_dir: Path):
    """An open ``metrics.jsonl`` for appending; write one ``json.dumps(record)`` per line."""
    # the caller closes it (``with``)
    return open(run_dir / METRICS, "a", encoding="utf-8")


def rewrite_metrics(run_dir: Path, records: list[dict]) -> None:
    text = "".join(json_line(r) for r in records)
    atomic_write(run_dir / METRICS, lambda p: p.write_text(text, encoding="utf-8"))


def is_finished(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` trained all its epochs."""
    last = run_dir / "last.json"
    if not last.is_file():
        return False
    doc = _read_json_object(last, f"delete the run folder {run_dir} and train it again")
    resume = doc.get("resume")
    return isinstance(resume, dict) and resume.get("done") is True
