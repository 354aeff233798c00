"""Optimisers, losses and learning-rate schedules by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["make_loss", "make_optimizer", "make_scheduler"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_optimizer(
    name: str,
    params,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """An optimiser by name, using torch's fused kernel where it has one for the device.

    Fused Adam/AdamW/SGD do the whole update in one kernel. On the 2-core CPU that
    made Adam's update for the ``fast`` net about 3x faster than the for-loop one
    (section 5 of benchmarks/results.md); a whole epoch gains less than its noise
    there, but the update's share grows with the device's speed. Adadelta has no
    fused kernel and uses foreach. ``betas`` are Adam's and AdamW's alone.
    """
    params = list(params)
    if name == "sgd":
        return _fused_or_foreach(
            torch.optim.SGD, params, lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    if name == "adam":
        return _fused_or_foreach(
            torch.optim.Adam, params, lr=lr, betas=betas, weight_decay=weight_decay
        )
    if name == "adamw":
        return _fused_or_foreach(
            torch.optim.AdamW, params, lr=lr, betas=betas, weight_decay=weight_decay
        )
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=weight_decay, foreach=True)
    raise ValueError(f"unknown optimizer {name!r}")


def _fused_or_foreach(cls, params: list, **kw) -> torch.optim.Optimizer:
    try:
        return cls(params, fused=True, **kw)
    except RuntimeError:  # no fused kernel for this device (or dtype): foreach is next best
        return cls(params, foreach=True, **kw)


def make_loss(
    name: str, label_smoothing: float = 0.0, num_classes: int = 10, outlier_weight: float = 0.0
) -> LossFn:
    """Cross-entropy on logits, or MSE between softmax-free logits and one-hot targets.

    MSE compares the raw outputs with one-hot vectors, as seed 002 does; the
    prediction is still the arg-max of the outputs.

    Rows labelled -1 are outliers, images that are no digit (``data/outliers.py``):
    with cross-entropy, ``outlier_weight`` times their cross-entropy to the uniform
    distribution is added, the loss of outlier exposure (Hendrycks et al., 2019)
    that teaches the model to spread its probabilities over them.
    """
    if name == "ce":

        def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing, ignore_index=-1)
            if not outlier_weight:
                return loss
            out = (y < 0).to(logits.dtype)  # (B,) 1 for outliers
            # cross-entropy to uniform: logsumexp - mean logit, per row
            to_uniform = torch.logsumexp(logits, 1) - logits.mean(1)
            return loss + outlier_weight * (to_uniform * out).sum() / out.sum().clamp(min=1)

        return ce
    if name == "mse":
        return lambda logits, y: F.mse_loss(logits, F.one_hot(y, num_classes).to(logits.dtype))
    raise ValueError(f"unknown loss {name!r}")


def make_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    steps_per_epoch: int,
    step_size: int = 1,
    gamma: float = 0.7,
    total_steps: int | None = None,
    cycle_momentum: bool = True,
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A scheduler stepped once per *batch*; step and cosine are expressed in batches too.

    ``total_steps``: the run's steps when its budget is not whole epochs.
    ``cycle_momentum``: whether one-cycle also cycles the momentum (SGD's, or Adam's
    beta1) inversely to the learning rate, between 0.95 and 0.85, as torch does.
    """
    total = total_steps or epochs * steps_per_epoch
    if name == "none":
        return None
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size * steps_per_epoch, gamma)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if name == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        # torch divides by zero when the warm-up ends on step 0 (0.25 * 4 - 1 == 0):
        # a 4-step run warms up a little longer instead
        pct_start = 0.3 if total == 4 else 0.25
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=max_lr,
            total_steps=total,
            pct_start=pct_start,
            cycle_momentum=cycle_momentum,
        )
    raise ValueError(f"unknown schedule {name!r}")
