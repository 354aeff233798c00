"""``mnistlab ensemble RUN... -o DIR``: several trained runs saved as one model.

The folder it writes is run-like: ``best.safetensors`` (every member's weights,
``members.0.conv1.weight`` ...) and ``best.json`` (the ensemble's metadata, which
lists the members and how they combine: the mean of their probabilities), so every
command that takes a run takes it. It calibrates the ensemble's own temperature
(``analysis/calibrate.py``) and writes ``ensemble.json``: each member's and the
ensemble's test accuracy and ECE, reported side by side and used to choose nothing.

All of it is built in a hidden temp folder beside the output (``.DIR.partial-PID``)
and renamed into place when finished: an interrupted build never leaves a folder
that looks like a model (uncalibrated, without ensemble.json), and the next build
removes what a killed one left.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .._io import atomic_write_json, built_folder
from ..data import load_split
from ..errors import MnistlabError, UsageError
from ..models import ENSEMBLE, create_model
from ..runs.checkpoint import load_checkpoint, read_checkpoint_json, save_checkpoint
from ..runs.folder import checkpoint_json, json_safe
from .calibrate import calibrate_checkpoint
from .evaluate import predict_probs
from .metrics import calibration

__all__ = ["build_ensemble"]


def _members(runs: list[str | os.PathLike]) -> list[tuple[torch.nn.Module, dict, str]]:
    """Each run's best model, its record (run, model, config, metrics) and dataset; an
    ensemble given as a run adds its members."""
    out = []
    for run in runs:
        model, doc = load_checkpoint(checkpoint_json(run))
        dataset = doc.get("dataset", "mnist")
        if model.meta.name == ENSEMBLE:
            records = doc.get("ensemble", {}).get("members")
            if not isinstance(records, list) or len(records) != len(model.members):
                raise MnistlabError(
                    f"{checkpoint_json(run)}: its ensemble.members do not match the members "
                    "of its model; the file was edited or damaged: build that ensemble again"
                )
            out += [(m, r, dataset) for m, r in zip(model.members, records, strict=True)]
            continue
        record = {
            "run": str(run),
            "model": model.meta.name,
            "config": doc.get("config", {}),
            "metrics": doc.get("metrics", {}),
        }
        out.append((model, record, dataset))
    return out


def build_ensemble(
    runs: list[str | os.PathLike], out_dir: str | os.PathLike, data_dir=None, device="cpu"
) -> dict:
    """Write the ensemble of ``runs`` into ``out_dir`` and return ``ensemble.json``'s content."""
    if len(runs) < 2:
        raise UsageError("an ensemble needs at least 2 runs; give more run folders")
    seen: set[Path] = set()
    for run in runs:
        if os.path.islink(run) and not os.path.exists(run):
            raise UsageError(
                f"{run} is a symbolic link to nothing (broken, or a loop); give a run folder"
            )
        if Path(run).resolve() in seen:
            raise UsageError(f"{run} is given twice; give each run once")
        seen.add(Path(run).resolve())
    out = _output(Path(out_dir))
    members = _members(runs)
    datasets = {d for _, _, d in members}
    if len(datasets) > 1:
        raise MnistlabError(
            f"the runs were trained on different datasets ({', '.join(sorted(datasets))}); "
            "an ensemble's members must classify the same images"
        )
    with built_folder(out) as tmp:
        summary = _build(members, datasets.pop(), tmp, data_dir, device)
    return summary


def _output(out: Path) -> Path:
    """``out`` checked as the folder to create (a link to a folder: the folder it names)."""
    if os.path.islink(out):
        if not out.exists():
            raise UsageError(
                f"{out} is a symbolic link to nothing (broken, or a loop); give a folder",
                option="out",
            )
        out = Path(os.path.realpath(out))
    if out.exists() and not out.is_dir():
        raise UsageError(
            f"{out} is a file, not a folder; give a folder (it is created if missing)",
            option="out",
        )
    if (out / "best.json").exists():
        raise UsageError(
            f"{out} already holds a model; give another folder or delete it", option="out"
        )
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(
            f"{out} is not empty; give a new or empty folder (the ensemble is written whole)",
            option="out",
        )
    return Path(os.path.abspath(out))  # "." too has a name and a parent to build beside


def _build(members, dataset: str, out: Path, data_dir, device) -> dict:
    """Save, calibrate and evaluate the ensemble of ``members`` in the folder ``out``."""
    first = members[0][0].meta
    model = create_model(
        ENSEMBLE,
        members=[m.meta.to_dict() for m, _, _ in members],
        mean=first.mean,
        std=first.std,
        class_names=first.class_names,
    )
    model.load_state_dict(
        {
            f"members.{i}.{k}": v
            for i, (m, _, _) in enumerate(members)
            for k, v in m.state_dict().items()
        }
    )
    info = {
        "dataset": dataset,
        "ensemble": {
            "combine": "mean of the members' probabilities",
            "members": [r for _, r, _ in members],
        },
    }
    stem = out / "best"
    save_checkpoint(stem, model, info)
    record = calibrate_checkpoint(stem.with_suffix(".json"), data_dir, device)
    summary = _evaluate(stem.with_suffix(".json"), members, dataset, data_dir, device)
    summary["calibration"] = record
    # recorded like a run's last epoch (`mnistlab serve`'s /api/model shows it); chosen on nothing
    doc, path = read_checkpoint_json(stem)
    doc["metrics"] = {"test_acc": summary["test"][-1]["test_accuracy"]}
    atomic_write_json(path, json_safe(doc))
    atomic_write_json(out / "ensemble.json", summary)
    return summary


def _evaluate(checkpoint: Path, members, dataset: str, data_dir, device) -> dict:
    """Test accuracy and ECE of each member and of the ensemble (reported, not used)."""
    x, y = load_split(dataset, "test", data_dir, device)
    y = y.cpu()
    rows = []
    ensemble, _ = load_checkpoint(checkpoint, device)
    for name, model in [*((r["run"], m) for m, r, _ in members), ("ensemble", ensemble)]:
        model = model.to(device)
        probs = predict_probs(model, x, model.meta.mean, model.meta.std)
        rows.append(
            {
                "model": name,
                "architecture": model.meta.name,
                "test_accuracy": (probs.argmax(1) == y).double().mean().item(),
                "test_ece": calibration(probs.double(), y)["ece"],
            }
        )
    return {"dataset": dataset, "test": rows}
