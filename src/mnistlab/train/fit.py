"""``fit``: one training run, from config to a run folder.

A run folder holds ``config.json``, ``metrics.jsonl`` (one JSON record per log
step and per epoch), ``best.*`` (best validation accuracy), ``last.*`` (with the
optimiser state, for ``--resume``) and ``curves.png``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .._alloc import keep_freed_memory
from .._io import atomic_write, atomic_write_json
from ..checkpoint import load_checkpoint, read_checkpoint_json, save_checkpoint
from ..data.augment import make_augment
from ..data.loader import DeviceLoader, load_data
from ..errors import MnistlabError, UsageError
from ..models import create_model
from .config import TrainConfig
from .loop import EpochPosition, StopFlag, evaluate, train_one_epoch
from .optim import LossFn, count_params, make_loss, make_optimizer, make_scheduler
from .state import capture_state, restore_state

__all__ = [
    "FitResult", "Reporter", "build_training", "fit", "make_train_loader", "pick_device",
    "read_metrics",
]  # fmt: skip

DRY_RUN_BATCHES, DRY_RUN_EVAL = 2, 512


class Reporter:
    """What ``fit`` tells the outside world. The default says nothing."""

    def start(self, cfg: TrainConfig, run_dir: Path, info: dict) -> None: ...
    def epoch_start(self, epoch: int, steps: int, start_step: int) -> None: ...
    def step(self, step: int) -> None: ...
    def log(self, record: dict) -> None: ...
    def epoch_end(self, record: dict) -> None: ...


@dataclass
class FitResult:
    run_dir: Path
    interrupted: bool = False
    history: list[dict] = field(default_factory=list)  # the epoch records
    best: dict | None = None  # the epoch record of the best checkpoint
    position: dict | None = None  # where an interrupted run stopped


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for "auto"; an explicit device must be available."""
    has_mps = getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a device; use auto, cpu, cuda or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available here; use --device auto or cpu")
    if dev.type == "mps" and not has_mps:
        raise UsageError("--device mps: MPS is not available here; use --device auto or cpu")
    return dev


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The records of ``metrics.jsonl``; a line cut short by a crash is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    records = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def _new_run_dir(cfg: TrainConfig) -> Path:
    name = cfg.run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model}"
    base = Path(cfg.out_dir) / name
    run_dir, i = base, 1
    while run_dir.exists():
        i += 1
        run_dir = base.with_name(f"{base.name}-{i}")
    try:
        run_dir.mkdir(parents=True)
    except OSError as e:
        raise MnistlabError(
            f"cannot create run folder {run_dir} ({e.strerror}); check --out-dir"
        ) from None
    return run_dir


def make_train_loader(
    cfg: TrainConfig, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float,
    max_batches: int | None = None,
) -> DeviceLoader:  # fmt: skip
    """The training batches of ``cfg``: seeded shuffle, full batches, its augmentation."""
    return DeviceLoader(
        images, labels, cfg.batch_size, mean, std, shuffle=True, seed=cfg.seed,
        drop_last=True, max_batches=max_batches, augment=make_augment(cfg.augment),
    )  # fmt: skip


def build_training(
    cfg: TrainConfig, mean: float, std: float, class_names: list[str], steps_per_epoch: int,
    device: torch.device, epochs: int | None = None,
) -> tuple[torch.nn.Module, torch.optim.Optimizer, object, LossFn]:  # fmt: skip
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


def fit(
    cfg: TrainConfig,
    resume: str | os.PathLike | None = None,
    reporter: Reporter | None = None,
    device_override: str | None = None,
) -> FitResult:
    """Train ``cfg`` into a new run folder, or continue the run folder ``resume``.

    A resumed run uses the saved config (``device_override`` may move it) and ends
    exactly where the uninterrupted run would have.
    """
    rep = reporter or Reporter()
    resume_doc = None
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").is_file():
            raise MnistlabError(f"{run_dir}: not a run folder (no config.json); check the path")
        cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        resume_doc, _ = read_checkpoint_json(run_dir / "last.json")
        if resume_doc["resume"]["done"]:
            raise MnistlabError(f"{run_dir}: this run already finished; nothing to resume")
    cfg.validate()
    if device_override:
        cfg.device = device_override
    device = pick_device(cfg.device)
    if device.type == "cpu":
        keep_freed_memory()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)

    data = load_data(cfg.dataset, cfg.data_dir, device, cfg.val_size, cfg.seed, cfg.train_subset)
    info = data.info
    mean = info.mean if cfg.mean is None else cfg.mean
    std = info.std if cfg.std is None else cfg.std
    epochs = 1 if cfg.dry_run else cfg.epochs
    loader = make_train_loader(
        cfg, *data.train, mean, std, max_batches=DRY_RUN_BATCHES if cfg.dry_run else None
    )
    model, optimizer, scheduler, loss_fn = build_training(
        cfg, mean, std, info.classes, len(loader), device, epochs
    )
    n_eval = DRY_RUN_EVAL if cfg.dry_run else None
    splits = {"val": data.val, "test": data.test}
    splits = {k: (v[0][:n_eval], v[1][:n_eval]) for k, v in splits.items() if v is not None}

    history: list[dict] = []
    best_val, best_record = -1.0, None
    pos = EpochPosition(1)
    if resume_doc is None:
        run_dir = _new_run_dir(cfg)
        atomic_write_json(run_dir / "config.json", cfg.to_dict())
    else:
        saved, doc, tensors = load_checkpoint(run_dir / "last.json", device, with_state=True)
        model.load_state_dict(saved.state_dict())
        restore_state(optimizer, scheduler, tensors, doc["resume"])
        r = doc["resume"]
        pos = EpochPosition(**{k: r[k] for k in EpochPosition.__dataclass_fields__})
        best_val = r["best_val_acc"]
        # drop what a hard kill may have logged after the saved position
        kept = [m for m in read_metrics(run_dir) if _before(m, pos)]
        _rewrite_metrics(run_dir, kept)
        history = [m for m in kept if m["type"] == "epoch"]
        best_record = next((m for m in reversed(history) if m.get("is_best")), None)

    rep.start(cfg, run_dir, {
        "device": str(device), "params": count_params(model), "dataset": info.name,
        "train_size": len(data.train[0]), "val_size": len(data.val[0]) if data.val else 0,
        "steps_per_epoch": len(loader), "resumed_at": asdict(pos) if resume_doc else None,
    })  # fmt: skip
    metrics_f = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def emit(record: dict) -> None:
        metrics_f.write(json.dumps(record) + "\n")
        metrics_f.flush()

    def on_log(record: dict) -> None:
        emit(record)
        rep.log(record)

    def save_last(position: EpochPosition, done: bool) -> None:
        tensors, doc = capture_state(optimizer, scheduler)
        doc.update(asdict(position), best_val_acc=best_val, done=done)
        info_doc = _ckpt_info(cfg, info, history) | {"resume": doc}
        save_checkpoint(run_dir / "last", model, info_doc, state=tensors)

    interrupted = False
    try:
        with StopFlag() as stop:
            while pos.epoch <= epochs:
                rep.epoch_start(pos.epoch, len(loader), pos.step)
                pos = train_one_epoch(
                    model, loader, optimizer, loss_fn, pos.epoch, scheduler, pos,
                    cfg.log_every, on_log, rep.step, stop,
                )  # fmt: skip
                if pos.step < len(loader):  # stopped by Ctrl-C in the middle of the epoch
                    interrupted = True
                    save_last(pos, done=False)
                    break
                t_eval = time.perf_counter()
                record = {
                    "type": "epoch", "epoch": pos.epoch, "train_loss": pos.loss_sum / pos.seen,
                    "train_acc": pos.correct / pos.seen, "lr": optimizer.param_groups[0]["lr"],
                    "train_seconds": pos.seconds,
                }  # fmt: skip
                for split, (x, y) in splits.items():
                    ev = evaluate(
                        model, x, y, mean, std, loss_fn, cfg.eval_batch_size,
                        len(info.classes),
                    )  # fmt: skip
                    record[f"{split}_loss"], record[f"{split}_acc"] = ev["loss"], ev["acc"]
                record["eval_seconds"] = time.perf_counter() - t_eval
                # Select on validation only; with no validation split the last epoch is kept.
                score = record.get("val_acc", float(pos.epoch))
                record["is_best"] = score > best_val
                if record["is_best"]:
                    best_val, best_record = score, record
                    save_checkpoint(run_dir / "best", model, _ckpt_info(cfg, info, [record]))
                history.append(record)
                emit(record)
                rep.epoch_end(record)
                pos = EpochPosition(pos.epoch + 1)
                save_last(pos, done=pos.epoch > epochs)
                _plot(run_dir, history, len(loader))
                if stop.requested:
                    interrupted = True
                    break
    finally:
        metrics_f.close()
    position = asdict(pos) if interrupted else None
    return FitResult(run_dir, interrupted, history, best_record, position)


def _before(record: dict, pos: EpochPosition) -> bool:
    """Whether a metrics record was written before the saved position."""
    if record.get("type") == "epoch":
        return record["epoch"] < pos.epoch
    return (record["epoch"], record["step"]) <= (pos.epoch, pos.step)


def _rewrite_metrics(run_dir: Path, records: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    atomic_write(run_dir / "metrics.jsonl", lambda p: p.write_text(text, encoding="utf-8"))


def _ckpt_info(cfg: TrainConfig, info, history: list[dict]) -> dict:
    last = history[-1] if history else {}
    return {
        "dataset": info.name,
        "config": cfg.to_dict(),
        "metrics": {k: v for k, v in last.items() if k != "type"},
    }


def _plot(run_dir: Path, history: list[dict], steps_per_epoch: int) -> None:
    from ..plots import plot_curves

    plot_curves(history, read_metrics(run_dir), run_dir / "curves.png", steps_per_epoch)
