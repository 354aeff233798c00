"""The training loop as plain functions: ``train_one_epoch``, ``evaluate``.

They take explicit values, not a config object, so they can be reused from a
notebook or a benchmark. ``fit`` (in ``fitting.py``) wires them to a run folder.
``evaluate`` here is the per-epoch loss and accuracy; the full evaluation with
pictures is ``analysis.evaluate.write_evaluation``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..data.loader import DeviceLoader
from ..data.normalize import normalize
from ..errors import MnistlabError
from .optim import LossFn

__all__ = ["Diverged", "EpochPosition", "StopFlag", "evaluate", "train_one_epoch"]


class Diverged(MnistlabError):
    """The loss became nan or infinite: training stops before it spoils anything else."""

    def __init__(self, what: str, value: float, epoch: int, step: int):
        self.what, self.value, self.epoch, self.step = what, value, epoch, step
        super().__init__(
            f"training diverged: the {what} became {value} at epoch {epoch}, step {step}; "
            "train again with a lower learning rate",
            kind="diverged",
        )


@dataclass
class EpochPosition:
    """Where an epoch stands; enough to resume it exactly, running sums included."""

    epoch: int
    step: int = 0  # batches done in this epoch
    loss_sum: float = 0.0  # sum over seen images of the per-image loss
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0  # training time, evaluation excluded
    # the same sums since the last step log, so logs after a resume match too
    win_loss_sum: float = 0.0
    win_correct: int = 0
    win_seen: int = 0


class StopFlag:
    """Turns the first Ctrl-C into a request to stop after the current step.

    Stopping between steps leaves the weights and the optimiser consistent, so the
    state saved on the way out resumes exactly. A second Ctrl-C interrupts at once.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not in the main thread: leave Ctrl-C alone
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def train_one_epoch(
    model: nn.Module,
    loader: DeviceLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    epoch: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    position: EpochPosition | None = None,
    steps: int | None = None,
    log_every: int = 0,
    on_log: Callable[[dict], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    stop: StopFlag | None = None,
    check_every: int | None = None,
    sum_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> EpochPosition:
    """Train over ``loader``'s batches for ``epoch``, from ``position.step`` on if given,
    up to step ``steps`` of the epoch (default: all of them).

    Every ``log_every`` steps ``on_log`` gets the running loss and accuracy since the
    last log. Returns the position reached: the whole epoch, or fewer steps if
    ``stop`` was requested. Raises :class:`Diverged` when the loss becomes nan or
    infinite: on the CPU before that step updates the weights, elsewhere (where
    reading the loss back costs a sync) within ``check_every`` steps (default
    ``CHECK_EVERY``) and before any log holding it.

    In distributed training (``train/dist.py``) ``loader`` yields this rank's share of
    each batch and ``sum_ranks`` sums a tensor over the ranks: the divergence checks,
    the logs and the returned sums then cover the whole batch, the same on every
    rank. A restored ``position``'s window sums count on one rank only.
    """
    pos = position or EpochPosition(epoch)
    total = sum_ranks or _this_process
    model.train()
    # running sums stay on the device: reading them back every step would sync a GPU
    dev = loader.images.device
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    correct = torch.zeros((), device=dev, dtype=torch.int64)
    seen = 0
    win_loss = torch.full_like(loss_sum, pos.win_loss_sum)
    win_correct = torch.full_like(correct, pos.win_correct)
    win_seen = pos.win_seen
    if check_every is None:
        check_every = 1 if dev.type == "cpu" else CHECK_EVERY
    t0 = time.perf_counter()
    for x, y in loader.batches(epoch, start=pos.step, stop=steps):
        logits = model(x)
        loss = loss_fn(logits, y)
        if check_every == 1:
            everywhere = total(loss.detach())  # all ranks stop at the same step
            if not torch.isfinite(everywhere):
                raise Diverged("training loss", everywhere.item(), epoch, pos.step + 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        digits = len(y) - loader.rank_outliers  # outliers (label -1) come last
        with torch.no_grad():
            b_loss = loss.detach().double() * digits
            b_correct = (logits[:digits].argmax(1) == y[:digits]).sum()
        loss_sum += b_loss
        correct += b_correct
        win_loss += b_loss
        win_correct += b_correct
        seen += digits
        win_seen += digits
        pos.step += 1
        if on_step:
            on_step(pos.step)
        logging = log_every and on_log and pos.step % log_every == 0
        if check_every > 1 and (logging or pos.step % check_every == 0):
            _check_finite(total(loss_sum), epoch, pos.step)
        if logging:
            w_loss, w_correct, w_seen = _read(total, win_loss, win_correct, win_seen)
            on_log(
                {
                    "type": "step",
                    "epoch": epoch,
                    "step": pos.step,
                    "loss": w_loss / w_seen,
                    "acc": w_correct / w_seen,
                    "lr": optimizer.param_groups[0]["lr"],
                }
            )
            win_loss.zero_()
            win_correct.zero_()
            win_seen = 0
        if stop is not None and stop.requested:
            break
    _check_finite(total(loss_sum), epoch, pos.step)
    loss_sum, correct, seen, w_loss, w_correct, w_seen = _read(
        total, loss_sum, correct, seen, win_loss, win_correct, win_seen
    )
    pos.loss_sum += loss_sum
    pos.correct += int(correct)
    pos.seen += int(seen)
    pos.win_loss_sum, pos.win_correct, pos.win_seen = w_loss, int(w_correct), int(w_seen)
    pos.seconds += time.perf_counter() - t0
    return pos


def _this_process(t: torch.Tensor) -> torch.Tensor:
    return t  # one process: its sums are the totals


def _read(total, *sums) -> list[float]:
    """Running sums (tensors or ints) summed over the ranks and read back in one go."""
    dev = next(s.device for s in sums if torch.is_tensor(s))
    packed = torch.stack([torch.as_tensor(s, dtype=torch.float64, device=dev) for s in sums])
    return total(packed).tolist()


CHECK_EVERY = 50  # steps between divergence checks on an accelerator


def _check_finite(loss_sum: torch.Tensor, epoch: int, step: int) -> None:
    # a sum of non-negative losses stays nan or inf once one of them was
    if not torch.isfinite(loss_sum):
        raise Diverged("training loss", loss_sum.item(), epoch, step)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: float,
    std: float,
    loss_fn: LossFn,
    batch_size: int = 1000,
    num_classes: int = 10,
    return_predictions: bool = False,
) -> dict:
    """Loss, accuracy and the confusion matrix of ``model`` on uint8 ``images``.

    ``confusion[i, j]`` counts images of true class i predicted as j.
    """
    was_training = model.training
    model.eval()
    n = len(images)
    loss_sum = torch.zeros((), dtype=torch.float64, device=images.device)
    preds = torch.empty(n, dtype=torch.int64, device=images.device)
    for i in range(0, n, batch_size):
        x = normalize(images[i : i + batch_size], mean, std)  # (B, 1, 28, 28)
        logits = model(x)
        y = labels[i : i + batch_size]
        loss_sum += loss_fn(logits, y).double() * len(y)
        preds[i : i + batch_size] = logits.argmax(1)
    model.train(was_training)
    # (C, C) counts; the same as analysis.metrics.confusion_matrix, which training
    # does not import (analysis sits above training)
    flat = labels.long() * num_classes + preds
    confusion = torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, -1).cpu()
    correct = int(confusion.diag().sum())
    out = {
        "loss": loss_sum.item() / max(n, 1),
        "loss_sum": loss_sum.item(),  # for a sum over shards (distributed evaluation)
        "acc": correct / max(n, 1),
        "correct": correct,
        "n": n,
        "confusion": confusion,
    }
    if return_predictions:
        out["predictions"] = preds.cpu()
    return out
