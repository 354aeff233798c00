"""Timed training: one epoch, or until the test accuracy first reaches a target.

Both take any iterable of ``(x, y)`` batches, so the device-resident loader and
the seeds' per-sample ``DataLoader`` run through the very same training step.
Only training is timed; evaluation pauses the clock and is reported apart.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..train.loop import evaluate
from ..train.optim import LossFn

__all__ = ["median_time", "time_epoch", "time_to_accuracy"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def median_time(fn: Callable[[], object], runs: int) -> float:
    """Median seconds of ``runs`` calls of ``fn``, after one untimed warm-up call."""
    fn()  # kernel selection and allocations happen on the first call
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _sync(device: torch.device | str) -> None:
    # GPU work is asynchronous: the clock must wait for it
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _step(model, x, y, optimizer, loss_fn, scheduler) -> None:
    loss = loss_fn(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


def time_epoch(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    device: torch.device,
    scheduler=None,
) -> tuple[float, int]:
    """(seconds, images) for one pass over ``batches``, loading included."""
    model.train()
    seen = 0
    _sync(device)
    t0 = time.perf_counter()
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        _step(model, x, y, optimizer, loss_fn, scheduler)
        seen += len(y)
    _sync(device)
    return time.perf_counter() - t0, seen


def time_to_accuracy(
    model: nn.Module,
    batches: Callable[[int], Batches],
    steps_per_epoch: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    scheduler,
    test: tuple[torch.Tensor, torch.Tensor],
    mean: float,
    std: float,
    device: torch.device,
    target: float = 0.99,
    evals_per_epoch: int = 2,
    max_epochs: int = 1,
    max_steps: int | None = None,
) -> dict:
    """Train until the test accuracy first reaches ``target``, evaluating on a fixed grid.

    ``batches(epoch)`` yields that epoch's batches. The test set is evaluated every
    ``steps_per_epoch // evals_per_epoch`` steps and at the end; the clock stops
    during evaluation. Returns the training seconds to the first hit (``None`` if
    the recipe ended first), the epochs it took, the evaluation seconds and the
    accuracy at each evaluation.
    """
    every = max(1, steps_per_epoch // evals_per_epoch)
    total = max_epochs * steps_per_epoch if max_steps is None else max_steps
    test_x, test_y = test
    elapsed = eval_seconds = 0.0
    step, history = 0, []
    result = {"seconds": None, "epochs": None, "steps": None}
    model.train()
    for epoch in range(1, max_epochs + 1):
        _sync(device)
        t0 = time.perf_counter()
        for x, y in batches(epoch):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            _step(model, x, y, optimizer, loss_fn, scheduler)
            step += 1
            if step % every and step != total:
                continue
            _sync(device)
            elapsed += time.perf_counter() - t0
            te = time.perf_counter()
            acc = evaluate(model, test_x, test_y, mean, std, loss_fn)["acc"]
            eval_seconds += time.perf_counter() - te
            history.append({"epochs": step / steps_per_epoch, "seconds": elapsed, "acc": acc})
            if acc >= target:
                result = {"seconds": elapsed, "epochs": step / steps_per_epoch, "steps": step}
                return {**result, "eval_seconds": eval_seconds, "history": history}
            if step >= total:
                return {**result, "eval_seconds": eval_seconds, "history": history}
            t0 = time.perf_counter()
        _sync(device)
        elapsed += time.perf_counter() - t0
    return {**result, "eval_seconds": eval_seconds, "history": history}
