"""What a run trains with, built from its config: the training batches, and the model,
optimiser, per-batch scheduler and loss. ``fit`` and the benchmarks build them the same
way, here."""

from __future__ import annotations

import torch

from ..data.augment import make_augment
from ..data.loader import DeviceLoader
from ..data.outliers import DRY_RUN_OUTLIERS, outlier_images
from ..models import create_model
from .config import TrainConfig
from .optim import LossFn, make_loss, make_optimizer, make_scheduler

__all__ = ["build_training", "make_train_loader"]


def make_train_loader(
    cfg: TrainConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: float,
    std: float,
    max_batches: int | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> DeviceLoader:
    """The training batches of ``cfg``: seeded shuffle, full batches, its augmentation
    and its outliers (rank ``rank``'s share of each, in distributed training)."""
    outliers = None
    if cfg.outlier_rows():
        # (M, 1, 28, 28) uint8 beside the digits, on their device
        count = DRY_RUN_OUTLIERS if cfg.dry_run else None
        outliers = torch.from_numpy(outlier_images("train", count))[:, None].to(images.device)
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
        rank=rank,
        world_size=world_size,
        outliers=outliers,
        outlier_rows=cfg.outlier_rows(),
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

    The schedule spans ``epochs`` epochs if given, else ``cfg``'s budget (its
    ``steps``, or its ``epochs``). Draws the model's initial weights from torch's
    global RNG; seed it first.
    """
    model = create_model(
        cfg.model, mean=mean, std=std, class_names=class_names, **cfg.model_kwargs
    ).to(device)
    if cfg.channels_last:
        # only 4-D (conv) weights change layout; a (N, 1, 28, 28) input already fits NHWC
        model = model.to(memory_format=torch.channels_last)
    betas = (0.9 if cfg.beta1 is None else cfg.beta1, cfg.beta2)
    optimizer = make_optimizer(
        cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay, betas
    )
    # a step budget sets the schedule's length, unless the caller asks for other epochs
    total = cfg.steps if epochs is None else None
    scheduler = make_scheduler(
        cfg.schedule,
        optimizer,
        epochs or cfg.epochs,
        steps_per_epoch,
        cfg.step_size,
        cfg.gamma,
        total_steps=total,
        # one-cycle cycles Adam's beta1 (SGD's momentum) unless the recipe fixes beta1
        cycle_momentum=cfg.beta1 is None or cfg.optimizer not in ("adam", "adamw"),
    )
    loss = make_loss(cfg.loss, cfg.label_smoothing, len(class_names), cfg.outlier_weight)
    return model, optimizer, scheduler, loss
