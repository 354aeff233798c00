"""``fit``: one training run, from config to a run folder (layout: ``runs/folder.py``).

``fit`` reads top to bottom: set up, then for each epoch train, evaluate, keep the
best checkpoint on validation and save the state to resume from. Training writes
data only (config, metrics, checkpoints); the pictures and the report are
analysis's job. Under torchrun the same code trains on every rank; the few
distributed steps are calls into ``dist`` (``train/dist.py``), which do nothing in
one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .._runtime import keep_freed_memory, pick_device
from ..data.loader import DeviceLoader, MnistData, load_data
from ..errors import MnistlabError, UsageError
from ..models import count_params
from ..runs import folder
from ..runs.checkpoint import save_checkpoint
from . import dist
from .build import build_training, make_train_loader
from .config import TrainConfig
from .ema import WeightAverage
from .loop import CHECK_EVERY, Diverged, EpochPosition, StopFlag, evaluate, train_one_epoch
from .optim import LossFn
from .resume import Progress, restore, saved_config
from .state import capture_state

__all__ = ["FitResult", "Reporter", "build_training", "fit", "make_train_loader"]

DRY_RUN_BATCHES, DRY_RUN_EVAL = 2, 512
STOP_EVERY = 10  # steps between the ranks' agreements on Ctrl-C, on the CPU


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
    model: torch.nn.Module  # the weights the optimiser trains
    optimizer: torch.optim.Optimizer
    scheduler: object
    loss_fn: LossFn
    splits: dict  # "val"/"test" -> (uint8 images, labels), cut short for a dry run
    average: WeightAverage | None = None  # the EMA of the weights, if the recipe keeps one

    def epoch_steps(self, epoch: int) -> int:
        """The steps epoch ``epoch`` trains: the whole loader, or what ``steps`` leaves."""
        if self.cfg.dry_run:
            return len(self.loader)
        return self.cfg.epoch_steps(epoch, len(self.loader))

    @property
    def kept(self) -> torch.nn.Module:
        """What evaluation and checkpoints use: the EMA if there is one, else the model."""
        return self.average.model if self.average is not None else self.model


def _build(cfg: TrainConfig) -> _Training:
    device = dist.rank_device(pick_device(cfg.device))
    if device.type == "cpu":
        keep_freed_memory()
    ranks = dist.world_size()
    if cfg.threads or ranks > 1:  # under torchrun: 1 thread per rank unless asked
        torch.set_num_threads(cfg.threads or 1)
    torch.manual_seed(cfg.seed)
    data = load_data(cfg.dataset, cfg.data_dir, device, cfg.val_size, cfg.seed, cfg.train_subset)
    left = len(data.train[0])
    if cfg.train_subset is not None and cfg.train_subset > left:
        raise UsageError(
            f"asks for {cfg.train_subset:,} images, but {data.info.name} has {left:,} training "
            f"images once val_size {cfg.val_size:,} are held out; give at most {left:,}",
            option="train_subset",
        )
    dist.check_batch(cfg.batch_size, left)
    mean = data.info.mean if cfg.mean is None else cfg.mean
    std = data.info.std if cfg.std is None else cfg.std
    max_batches = DRY_RUN_BATCHES if cfg.dry_run else None
    loader = make_train_loader(
        cfg, *data.train, mean, std, max_batches, rank=dist.rank(), world_size=ranks
    )
    epochs = 1 if cfg.dry_run else cfg.total_epochs(len(loader))
    model, optimizer, scheduler, loss_fn = build_training(
        cfg, mean, std, data.info.classes, len(loader), device, 1 if cfg.dry_run else None
    )
    n = DRY_RUN_EVAL if cfg.dry_run else None
    splits = {"val": data.val, "test": data.test}
    splits = {k: (v[0][:n], v[1][:n]) for k, v in splits.items() if v is not None}
    average = WeightAverage(model, cfg.ema) if cfg.ema else None
    return _Training(
        cfg,
        device,
        data,
        mean,
        std,
        epochs,
        loader,
        model,
        optimizer,
        scheduler,
        loss_fn,
        splits,
        average,
    )


def _setup(
    cfg: TrainConfig, run_dir: Path | None, device_override: str | None
) -> tuple[TrainConfig, _Training, Progress]:
    """The run's config, built, and where it stands: every rank does the same, with no
    collective calls (``dist.agree`` runs it)."""
    if run_dir is not None:
        cfg = saved_config(run_dir)
    cfg = dataclasses.replace(cfg.validate(), device=device_override or cfg.device)
    dist.check_batch(cfg.batch_size)  # before loading anything
    t = _build(cfg)
    if run_dir is None:
        return cfg, t, Progress()
    steps = len(t.loader)
    p = restore(
        run_dir, cfg, t.model, t.optimizer, t.scheduler, t.device, steps, dist.is_main(), t.average
    )
    return cfg, t, p


def _new_run_folder(cfg: TrainConfig) -> Path:
    run_dir = folder.new_run_dir(cfg.out_dir, cfg.run_name or folder.default_run_name(cfg.model))
    folder.write_config(run_dir, cfg.to_dict())
    return run_dir


def fit(
    cfg: TrainConfig,
    resume: str | os.PathLike | None = None,
    reporter: Reporter | None = None,
    device_override: str | None = None,
) -> FitResult:
    """Train ``cfg`` into a new run folder, or continue the run folder ``resume``.

    A resumed run uses the saved config (``device_override`` may move it) and ends
    exactly where the uninterrupted run would have. ``cfg`` itself is not changed.
    Under torchrun every rank calls it and gets the same result; rank 0 alone writes
    the folder, and only its ``reporter`` should speak.
    """
    started = dist.init()
    try:
        return _fit(cfg, resume, reporter or Reporter(), device_override)
    finally:
        dist.teardown(started)


def _fit(
    cfg: TrainConfig, resume: str | os.PathLike | None, rep: Reporter, device_override: str | None
) -> FitResult:
    run_dir = Path(resume) if resume is not None else None
    cfg, t, p = dist.agree(lambda: _setup(cfg, run_dir, device_override))
    if run_dir is None:
        run_dir = dist.on_main(lambda: _new_run_folder(cfg))
    trained = dist.wrap(t.model, t.device)  # t.model itself in one process
    rep.start(cfg, run_dir, _start_info(t, p))
    main = dist.is_main()  # the one rank that writes

    def save_last(done: bool) -> None:
        if not main:
            return
        tensors, doc = capture_state(t.optimizer, t.scheduler)
        doc.update(asdict(p.pos), best_val_acc=p.best_val, done=done)
        if t.average is not None:
            tensors.update(t.average.state())
            doc["ema_updates"] = t.average.updates
        info = _ckpt_info(cfg, t.data.info, p.history) | {"resume": doc}
        save_checkpoint(run_dir / "last", t.model, info, state=tensors)

    interrupted = False
    metrics_file = folder.append_metrics(run_dir) if main else contextlib.nullcontext()
    # Reading a value back costs a sync on a GPU, and each agreement between ranks a
    # round trip (~1 ms with gloo here): they check for divergence every CHECK_EVERY
    # steps, and agree on Ctrl-C every STOP_EVERY steps (CHECK_EVERY on a GPU)
    cpu, ranks = t.device.type == "cpu", dist.world_size()
    check_every = None if cpu and ranks == 1 else CHECK_EVERY
    stop_every = 1 if ranks == 1 else STOP_EVERY if cpu else CHECK_EVERY

    def on_step(step: int) -> None:
        if t.average is not None:
            t.average.update(t.model)
        rep.step(step)

    with metrics_file as metrics, StopFlag() as ctrl_c:
        stop = dist.AgreedStop(ctrl_c, every=stop_every)  # all ranks stop together

        def emit(record: dict) -> None:
            if metrics is not None:
                metrics.write(folder.json_line(record))
                metrics.flush()
            if record["type"] == "step":
                rep.log(record)

        try:
            while p.pos.epoch <= t.epochs:
                rep.epoch_start(p.pos.epoch, t.epoch_steps(p.pos.epoch), p.pos.step)
                p.pos = train_one_epoch(
                    trained,
                    t.loader,
                    t.optimizer,
                    t.loss_fn,
                    epoch=p.pos.epoch,
                    scheduler=t.scheduler,
                    position=p.pos,
                    steps=t.epoch_steps(p.pos.epoch),
                    log_every=cfg.log_every,
                    on_log=emit,
                    on_step=on_step,
                    stop=stop,
                    check_every=check_every,
                    sum_ranks=dist.sum_ranks,
                )
                if p.pos.step < t.epoch_steps(p.pos.epoch):  # stopped by Ctrl-C mid-epoch
                    interrupted = True
                    save_last(done=False)
                    break
                record = _evaluate_epoch(t, p.pos)
                # Select on validation only; with no validation split the last epoch is kept.
                score = record.get("val_acc", float(p.pos.epoch))
                record["is_best"] = score > p.best_val
                if record["is_best"]:
                    p.best_val, p.best = score, record
                    if main:
                        info = _ckpt_info(cfg, t.data.info, [record])
                        save_checkpoint(run_dir / "best", t.kept, info)
                p.history.append(record)
                emit(record)
                rep.epoch_end(record)
                p.pos = EpochPosition(p.pos.epoch + 1)
                save_last(done=p.pos.epoch > t.epochs)
                if stop.requested:
                    interrupted = True
                    break
        except Diverged as e:  # every rank diverges at the same step (the checks are summed)
            raise dist.reported_by_main(_diverged(cfg, e, run_dir)) from None
    dist.check_same_result(t.kept, p.history)
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
        mine = dist.share(len(x))  # each rank evaluates its share; the sums are summed
        ev = evaluate(
            t.kept, x[mine], y[mine], t.mean, t.std, t.loss_fn, t.cfg.eval_batch_size, n_classes
        )
        sums = torch.tensor([ev["loss_sum"], ev["correct"], ev["n"]], dtype=torch.float64)
        loss_sum, correct, n = dist.sum_ranks(sums).tolist()
        record[f"{split}_loss"], record[f"{split}_acc"] = loss_sum / max(n, 1), correct / max(n, 1)
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


def _start_info(t: _Training, p: Progress) -> dict:
    ranks = dist.world_size()
    return {
        "device": str(t.device) + (f" x {dist.describe()}" if ranks > 1 else ""),
        "ranks": ranks,
        "params": count_params(t.model),
        "dataset": t.data.info.name,
        "train_size": len(t.data.train[0]),
        "val_size": len(t.data.val[0]) if t.data.val else 0,
        "steps_per_epoch": len(t.loader),
        "resumed_at": asdict(p.pos) if p.resumed else None,
    }


def _ckpt_info(cfg: TrainConfig, info, history: list[dict]) -> dict:
    last = history[-1] if history else {}
    return {
        "dataset": info.name,
        "config": cfg.to_dict(),
        "metrics": {k: v for k, v in last.items() if k != "type"},
    }
