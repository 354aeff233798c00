"""``fit``: one training run, from config to a run folder (layout: ``runs/folder.py``).

``fit`` reads top to bottom: set up, then for each epoch train, evaluate, keep the
best checkpoint on validation and save the state to resume from. Training writes
data only (config, metrics, checkpoints); the pictures and the report are
analysis's job.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .._runtime import keep_freed_memory, pick_device
from ..data.augment import make_augment
from ..data.loader import DeviceLoader, MnistData, load_data
from ..errors import MnistlabError, UsageError
from ..models import count_params, create_model
from ..runs import folder
from ..runs.checkpoint import load_checkpoint, read_checkpoint_json, save_checkpoint
from .config import TrainConfig
from .loop import Diverged, EpochPosition, StopFlag, evaluate, train_one_epoch
from .optim import LossFn, make_loss, make_optimizer, make_scheduler
from .state import capture_state, check_resume_doc, check_saved_recipe, restore_state

__all__ = ["FitResult", "Reporter", "build_training", "fit", "make_train_loader"]

DRY_RUN_BATCHES, DRY_RUN_EVAL = 2, 512


class Reporter:
    """What ``fit`` tells the outside world. The default says nothing."""

    def start(self, cfg: TrainConfig, run_dir: Path, info: dict) -> None: ...
    def epoch_start(self, epoch: int, steps: int, start_step: int) -> None: ...
    def step(self, step: int) -> None: ...
    def log(self, record: dict) -> None: ...
    def epoch_end(self, record: dict) -> None: ...
    def close(self) -> None: ...


@dataclass
class FitResult:
    run_dir: Path
    interrupted: bool = False
    history: list[dict] = field(default_factory=list)  # the epoch records
    best: dict | None = None  # the epoch record of the best checkpoint
    position: dict | None = None  # where an interrupted run stopped


def make_train_loader(
    cfg: TrainConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: float,
    std: float,
    max_batches: int | None = None,
) -> DeviceLoader:
    """The training batches of ``cfg``: seeded shuffle, full batches, its augmentation."""
    return DeviceLoader(
        images,
        labels,
        cfg.batch_size,
        mean,
        std,
        shuffle=True,
        seed=cfg.seed,
        drop_last=True,
        max_batches=max_batches,
        augment=make_augment(cfg.augment),
    )


def build_training(
    cfg: TrainConfig,
    mean: float,
    std: float,
    class_names: list[str],
    steps_per_epoch: int,
    device: torch.device,
    epochs: int | None = None,
) -> tuple[torch.nn.Module, torch.optim.Optimizer, object, LossFn]:
    """Model (on ``device``), optimiser, per-batch scheduler and loss of ``cfg``.

    Draws the model's initial weights from torch's global RNG; seed it first.
    """
    model = create_model(
        cfg.model, mean=mean, std=std, class_names=class_names, **cfg.model_kwargs
    ).to(device)
    if cfg.channels_last:
        # only 4-D (conv) weights change layout; a (N, 1, 28, 28) input already fits NHWC
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(
        cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay
    )
    scheduler = make_scheduler(
        cfg.schedule, optimizer, epochs or cfg.epochs, steps_per_epoch, cfg.step_size, cfg.gamma
    )
    return model, optimizer, scheduler, make_loss(cfg.loss, cfg.label_smoothing, len(class_names))


@dataclass
class _Training:
    """Everything one run trains with, built from its config on its device."""

    cfg: TrainConfig
    device: torch.device
    data: MnistData
    mean: float
    std: float
    epochs: int
    loader: DeviceLoader
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    loss_fn: LossFn
    splits: dict  # "val"/"test" -> (uint8 images, labels), cut short for a dry run


def _build(cfg: TrainConfig) -> _Training:
    device = pick_device(cfg.device)
    if device.type == "cpu":
        keep_freed_memory()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    data = load_data(cfg.dataset, cfg.data_dir, device, cfg.val_size, cfg.seed, cfg.train_subset)
    left = len(data.train[0])
    if cfg.train_subset is not None and cfg.train_subset > left:
        raise UsageError(
            f"asks for {cfg.train_subset:,} images, but {data.info.name} has {left:,} training "
            f"images once val_size {cfg.val_size:,} are held out; give at most {left:,}",
            option="train_subset",
        )
    mean = data.info.mean if cfg.mean is None else cfg.mean
    std = data.info.std if cfg.std is None else cfg.std
    epochs = 1 if cfg.dry_run else cfg.epochs
    max_batches = DRY_RUN_BATCHES if cfg.dry_run else None
    loader = make_train_loader(cfg, *data.train, mean, std, max_batches=max_batches)
    model, optimizer, scheduler, loss_fn = build_training(
        cfg, mean, std, data.info.classes, len(loader), device, epochs
    )
    n = DRY_RUN_EVAL if cfg.dry_run else None
    splits = {"val": data.val, "test": data.test}
    splits = {k: (v[0][:n], v[1][:n]) for k, v in splits.items() if v is not None}
    return _Training(
        cfg, device, data, mean, std, epochs, loader, model, optimizer, scheduler, loss_fn, splits
    )


@dataclass
class _Progress:
    """Where a run stands: restored from ``last.*`` on resume."""

    pos: EpochPosition = field(default_factory=lambda: EpochPosition(1))
    best_val: float = -1.0
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    resumed: bool = False


def _saved_config(run_dir: Path) -> TrainConfig:
    folder.require_run_folder(run_dir)
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
    try:
        cfg = TrainConfig.from_dict(folder.read_config(run_dir)).validate()
        create_model(cfg.model, **cfg.model_kwargs)  # a model and settings that exist
    except UsageError as e:
        raise MnistlabError(
            f"{config}: {e.cli_message()}; the file was edited: restore it or train again"
        ) from None
    saved = doc.get("model")
    if isinstance(saved, dict):  # a malformed one is refused when the checkpoint loads
        _check_same_model(run_dir, cfg, saved.get("name"), saved.get("kwargs"))
    check_saved_recipe(doc, resume, cfg.recipe(), cfg.epochs, config, last)
    return cfg


def _check_same_model(run_dir: Path, cfg: TrainConfig, name, kwargs) -> None:
    want = _describe(cfg.model, cfg.model_kwargs)
    got = _describe(name, kwargs if isinstance(kwargs, dict) else {})
    if want != got:
        raise MnistlabError(
            f"{run_dir}: {folder.CONFIG} names model {want} but last.json holds {got}; "
            f"one of them was edited: restore {folder.CONFIG} or train again"
        )


def _restore(run_dir: Path, t: _Training) -> _Progress:
    last = run_dir / "last.json"
    saved, doc, tensors = load_checkpoint(last, t.device, with_state=True)
    r = check_resume_doc(doc, last)
    _check_same_model(run_dir, t.cfg, saved.meta.name, saved.meta.kwargs)
    try:
        t.model.load_state_dict(saved.state_dict())
        restore_state(t.optimizer, t.scheduler, tensors, r)
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as e:
        raise MnistlabError(
            f"{run_dir}: the saved training state does not fit {folder.CONFIG} "
            f"({type(e).__name__}); one of them was edited: restore it or train again"
        ) from None
    pos = EpochPosition(**{k: r[k] for k in EpochPosition.__dataclass_fields__})
    if pos.step > len(t.loader):
        raise MnistlabError(
            f"{last}: resume.step {pos.step} is past the epoch's {len(t.loader)} steps; "
            "the file was edited or damaged: train again"
        )
    # drop what a hard kill may have logged after the saved position
    kept = [m for m in folder.read_metrics(run_dir) if _valid(m) and _before(m, pos)]
    folder.rewrite_metrics(run_dir, kept)
    history = [m for m in kept if m["type"] == "epoch"]
    best = next((m for m in reversed(history) if m.get("is_best")), None)
    return _Progress(pos, r["best_val_acc"], history, best, resumed=True)


def fit(
    cfg: TrainConfig,
    resume: str | os.PathLike | None = None,
    reporter: Reporter | None = None,
    device_override: str | None = None,
) -> FitResult:
    """Train ``cfg`` into a new run folder, or continue the run folder ``resume``.

    A resumed run uses the saved config (``device_override`` may move it) and ends
    exactly where the uninterrupted run would have. ``cfg`` itself is not changed.
    """
    rep = reporter or Reporter()
    run_dir = Path(resume) if resume is not None else None
    if run_dir is not None:
        cfg = _saved_config(run_dir)
    cfg = dataclasses.replace(cfg.validate(), device=device_override or cfg.device)
    t = _build(cfg)
    if run_dir is None:
        run_dir = folder.new_run_dir(
            cfg.out_dir, cfg.run_name or folder.default_run_name(cfg.model)
        )
        folder.write_config(run_dir, cfg.to_dict())
        p = _Progress()
    else:
        p = _restore(run_dir, t)
    rep.start(cfg, run_dir, _start_info(t, p))

    def save_last(done: bool) -> None:
        tensors, doc = capture_state(t.optimizer, t.scheduler)
        doc.update(asdict(p.pos), best_val_acc=p.best_val, done=done)
        info = _ckpt_info(cfg, t.data.info, p.history) | {"resume": doc}
        save_checkpoint(run_dir / "last", t.model, info, state=tensors)

    interrupted = False
    with folder.append_metrics(run_dir) as metrics, StopFlag() as stop:

        def emit(record: dict) -> None:
            metrics.write(folder.json_line(record))
            metrics.flush()
            if record["type"] == "step":
                rep.log(record)

        try:
            while p.pos.epoch <= t.epochs:
                rep.epoch_start(p.pos.epoch, len(t.loader), p.pos.step)
                p.pos = train_one_epoch(
                    t.model,
                    t.loader,
                    t.optimizer,
                    t.loss_fn,
                    epoch=p.pos.epoch,
                    scheduler=t.scheduler,
                    position=p.pos,
                    log_every=cfg.log_every,
                    on_log=emit,
                    on_step=rep.step,
                    stop=stop,
                )
                if p.pos.step < len(t.loader):  # stopped by Ctrl-C in the middle of the epoch
                    interrupted = True
                    save_last(done=False)
                    break
                record = _evaluate_epoch(t, p.pos)
                # Select on validation only; with no validation split the last epoch is kept.
                score = record.get("val_acc", float(p.pos.epoch))
                record["is_best"] = score > p.best_val
                if record["is_best"]:
                    p.best_val, p.best = score, record
                    save_checkpoint(
                        run_dir / "best", t.model, _ckpt_info(cfg, t.data.info, [record])
                    )
                p.history.append(record)
                emit(record)
                rep.epoch_end(record)
                p.pos = EpochPosition(p.pos.epoch + 1)
                save_last(done=p.pos.epoch > t.epochs)
                if stop.requested:
                    interrupted = True
                    break
        except Diverged as e:
            raise _diverged(cfg, e, run_dir) from None
    position = asdict(p.pos) if interrupted else None
    return FitResult(run_dir, interrupted, p.history, p.best, position)


def _evaluate_epoch(t: _Training, pos: EpochPosition) -> dict:
    """The epoch's record: training sums, then loss and accuracy on val and test."""
    t_eval = time.perf_counter()
    record = {
        "type": "epoch",
        "epoch": pos.epoch,
        "train_loss": pos.loss_sum / pos.seen,
        "train_acc": pos.correct / pos.seen,
        "lr": t.optimizer.param_groups[0]["lr"],
        "train_seconds": pos.seconds,
        "steps": pos.step,
    }
    n_classes = len(t.data.info.classes)
    for split, (x, y) in t.splits.items():
        ev = evaluate(t.model, x, y, t.mean, t.std, t.loss_fn, t.cfg.eval_batch_size, n_classes)
        record[f"{split}_loss"], record[f"{split}_acc"] = ev["loss"], ev["acc"]
        if not math.isfinite(record[f"{split}_loss"]):
            name = "validation" if split == "val" else "test"
            raise Diverged(f"{name} loss", record[f"{split}_loss"], pos.epoch, pos.step)
    record["eval_seconds"] = time.perf_counter() - t_eval
    return record


def _diverged(cfg: TrainConfig, e: Diverged, run_dir: Path) -> MnistlabError:
    """What to change when a run diverged: mostly the learning rate."""
    also = " (or check mean/std)" if cfg.mean is not None or cfg.std is not None else ""
    kept = f"keeps epochs 1-{e.epoch - 1}" if e.epoch > 1 else "holds no checkpoint: delete it"
    return MnistlabError(
        f"{cfg.lr:g} is too high for this run: the {e.what} became {e.value} at epoch "
        f"{e.epoch}, step {e.step}, so training stopped; train again with a lower one, "
        f"e.g. {cfg.lr / 10:g}{also} ({run_dir} {kept})",
        option="lr",
        kind="diverged",
    )


def _start_info(t: _Training, p: _Progress) -> dict:
    return {
        "device": str(t.device),
        "params": count_params(t.model),
        "dataset": t.data.info.name,
        "train_size": len(t.data.train[0]),
        "val_size": len(t.data.val[0]) if t.data.val else 0,
        "steps_per_epoch": len(t.loader),
        "resumed_at": asdict(p.pos) if p.resumed else None,
    }


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


def _ckpt_info(cfg: TrainConfig, info, history: list[dict]) -> dict:
    last = history[-1] if history else {}
    return {
        "dataset": info.name,
        "config": cfg.to_dict(),
        "metrics": {k: v for k, v in last.items() if k != "type"},
    }
