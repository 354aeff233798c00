"""Resuming a run folder: which config it trains, and where it stopped.

``fit`` calls :func:`saved_config` before it builds anything, then :func:`restore`
to put the saved weights, optimiser, scheduler and position back. Both refuse an
edited or damaged folder in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .._io import remove_stale_temps
from ..errors import MnistlabError, UsageError
from ..models import create_model
from ..runs import folder
from ..runs.checkpoint import load_checkpoint, read_checkpoint_json
from .config import TrainConfig
from .loop import EpochPosition
from .state import check_resume_doc, check_saved_recipe, restore_state

__all__ = ["Progress", "check_same_model", "restore", "saved_config"]


@dataclass
class Progress:
    """Where a run stands: restored from ``last.*`` on resume."""

    pos: EpochPosition = field(default_factory=lambda: EpochPosition(1))
    best_val: float = -1.0
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    resumed: bool = False


def saved_config(run_dir: Path) -> TrainConfig:
    """The config the run in ``run_dir`` trains with, checked against its last.json."""
    folder.require_run_folder(run_dir)
    remove_stale_temps(run_dir)  # what a killed write left (curves.png, checkpoints ...)
    last = run_dir / "last.json"
    if not last.is_file():
        raise MnistlabError(
            f"{run_dir}: nothing to resume: the run stopped before it saved its first "
            "checkpoint (no last.json); train it again (and delete this folder)"
        )
    doc, _ = read_checkpoint_json(last)
    resume = check_resume_doc(doc, last)
    if resume["done"]:
        raise MnistlabError(f"{run_dir}: this run already finished; nothing to resume")
    config = run_dir / folder.CONFIG
    saved_dict = folder.read_config(run_dir)
    _check_config_keys(saved_dict, config)
    try:
        cfg = TrainConfig.from_dict(saved_dict).validate()
        create_model(cfg.model, **cfg.model_kwargs)  # a model and settings that exist
    except UsageError as e:
        raise MnistlabError(
            f"{config}: {e.cli_message()}; the file was edited: restore it or train again"
        ) from None
    saved = doc.get("model")
    if isinstance(saved, dict):  # a malformed one is refused when the checkpoint loads
        check_same_model(run_dir, cfg, saved.get("name"), saved.get("kwargs"))
    # a step budget's epochs depend on the loader; they are at most its steps
    most = cfg.epochs if cfg.steps is None else cfg.steps
    check_saved_recipe(doc, resume, cfg.recipe(), most, config, last)
    _check_metrics(run_dir, resume)  # after the position is known to be the run's own
    return cfg


def _check_config_keys(saved: dict, config: Path) -> None:
    """config.json holds every field of TrainConfig and nothing else: a deleted key
    would silently train with today's default, an unknown one would be ignored."""
    fields = TrainConfig.__dataclass_fields__
    missing = [k for k in fields if k not in saved]
    unknown = sorted(k for k in saved if k not in fields)
    if missing or unknown:
        what = "; ".join(
            f"{label} {', '.join(keys)}"
            for label, keys in (("lacks", missing), ("has unknown keys", unknown))
            if keys
        )
        raise MnistlabError(f"{config} {what}; the file was edited: restore it or train again")


def _check_metrics(run_dir: Path, resume: dict) -> None:
    """The run's record of its finished epochs is there: resuming without it would
    rewrite metrics.jsonl with the new epochs alone, and the best epoch, the curves and
    the report would forget the ones before."""
    done = resume["epoch"] - 1  # the position is the epoch to train next
    if done < 1:
        return
    path = run_dir / folder.METRICS
    if not path.is_file():
        raise MnistlabError(
            f"{path} is missing but the run has trained {done} epoch(s); restore it, or train again"
        )
    have = {m.get("epoch") for m in folder.read_metrics(run_dir) if m.get("type") == "epoch"}
    lost = [e for e in range(1, done + 1) if e not in have]
    if lost:
        shown = ", ".join(map(str, lost[:5]))
        if len(lost) > 5:
            shown += f" ... ({len(lost)} in all)"
        raise MnistlabError(
            f"{path} lacks the record of epoch(s) {shown} of the "
            f"{done} the run has trained; restore it, or train again"
        )


def check_same_model(run_dir: Path, cfg: TrainConfig, name, kwargs) -> None:
    want = _describe(cfg.model, cfg.model_kwargs)
    got = _describe(name, kwargs if isinstance(kwargs, dict) else {})
    if want != got:
        raise MnistlabError(
            f"{run_dir}: {folder.CONFIG} names model {want} but last.json holds {got}; "
            f"one of them was edited: restore {folder.CONFIG} or train again"
        )


def restore(
    run_dir: Path,
    cfg: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    device: torch.device,
    steps: int,
    main: bool = True,
    average=None,
) -> Progress:
    """Load ``run_dir``'s last checkpoint into ``model``, ``optimizer`` and ``scheduler``
    (and ``average``, the weights' EMA, if the recipe keeps one) and return where the
    run stood. ``steps``: the steps of one epoch.

    ``main``: whether this process writes (in distributed training, rank 0 alone):
    it drops the metrics a hard kill logged after the saved position. The others
    only read, and leave the saved window of step sums to rank 0, since the loop
    sums each rank's share of it over the ranks.
    """
    last = run_dir / "last.json"
    saved, doc, tensors = load_checkpoint(last, device, with_state=True)
    r = check_resume_doc(doc, last)
    check_same_model(run_dir, cfg, saved.meta.name, saved.meta.kwargs)
    try:
        model.load_state_dict(saved.state_dict())
        restore_state(optimizer, scheduler, tensors, r)
        if average is not None:
            average.restore(tensors, int(doc["resume"]["ema_updates"]))
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as e:
        raise MnistlabError(
            f"{run_dir}: the saved training state does not fit {folder.CONFIG} "
            f"({type(e).__name__}); one of them was edited: restore it or train again"
        ) from None
    pos = EpochPosition(**{k: r[k] for k in EpochPosition.__dataclass_fields__})
    if pos.step > steps:
        raise MnistlabError(
            f"{last}: resume.step {pos.step} is past the epoch's {steps} steps; "
            "the file was edited or damaged: train again"
        )
    # drop what a hard kill may have logged after the saved position
    kept = [m for m in folder.read_metrics(run_dir) if _valid(m) and _before(m, pos)]
    if main:
        folder.rewrite_metrics(run_dir, kept)
    else:
        pos.win_loss_sum, pos.win_correct, pos.win_seen = 0.0, 0, 0
    history = [m for m in kept if m["type"] == "epoch"]
    best = next((m for m in reversed(history) if m.get("is_best")), None)
    return Progress(pos, r["best_val_acc"], history, best, resumed=True)


def _describe(name: str, kwargs: dict) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{name!r}" + (f" ({args})" if args else "")


def _valid(record: dict) -> bool:
    """Whether a metrics record has the fields resuming reads (a line may be edited)."""
    keys = ("epoch",) if record.get("type") == "epoch" else ("epoch", "step")
    return record.get("type") in ("epoch", "step") and all(
        isinstance(record.get(k), int) for k in keys
    )


def _before(record: dict, pos: EpochPosition) -> bool:
    """Whether a metrics record was written before the saved position."""
    if record.get("type") == "epoch":
        return record["epoch"] < pos.epoch
    return (record["epoch"], record["step"]) <= (pos.epoch, pos.step)
