"""Distributed data-parallel training under torchrun: everything ``fit`` needs for it.

``torchrun --nproc-per-node N -m mnistlab train ...`` starts N copies of the same
command, each with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment.
Each copy, a *rank*, keeps the whole device-resident training split, draws the
same global permutation and trains on its own equal share of every global batch
(``DeviceLoader``'s ``rank``/``world_size``). ``DistributedDataParallel`` averages
the gradients, so every rank takes the step one process would take on the whole
batch, and BatchNorm's statistics cover the whole batch too (:func:`wrap`). Only
rank 0 writes: the run folder, the metrics, the checkpoints and the terminal.

In one process every helper here is a no-op, so ``fit`` calls them unconditionally.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import MnistlabError, UsageError

__all__ = [
    "AgreedStop",
    "ReportedByMain",
    "SharedBatchNorm",
    "agree",
    "check_batch",
    "check_same_result",
    "describe",
    "init",
    "is_main",
    "on_main",
    "rank",
    "rank_device",
    "reported_by_main",
    "share",
    "sum_ranks",
    "teardown",
    "world_size",
    "wrap",
]

T = TypeVar("T")


# --- who am I -----------------------------------------------------------------------


def _running() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """How many ranks train together: 1 outside torchrun."""
    return dist.get_world_size() if _running() else int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank, 0 to ``world_size() - 1``; torchrun's ``RANK`` before ``init``."""
    return dist.get_rank() if _running() else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this is rank 0: the one rank that writes files and talks to the user."""
    return rank() == 0


def init() -> bool:
    """Join the process group torchrun set up; True if this call started it (end it with
    :func:`teardown`). Nothing to do in one process, or when the caller already did it.

    gloo carries CPU tensors and NCCL CUDA ones, so the same group serves a run on
    either device; object collectives (:func:`agree`) go through gloo.
    """
    if world_size() == 1 or _running():
        return False
    from .lifeline import die_with_launcher

    die_with_launcher()  # no orphan rank training on if torchrun is killed
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    return True


def teardown(started: bool) -> None:
    """Leave the process group (if :func:`init` started it), once every rank is done.

    DDP keeps the gloo group's worker threads alive even so (torch 2.13); a process
    that then exits while one of them still releases a finished collective's
    tensors aborts in Python's shutdown. ``mnistlab train`` ends its ranks with
    ``os._exit`` for that reason (cli/train.py); a script may do the same.
    """
    if started and _running():
        dist.barrier()  # the last collectives are complete on every rank
        dist.destroy_process_group()


def describe() -> str:
    """The group in a few words for the start line, e.g. ``2 ranks (gloo)``."""
    return f"{world_size()} ranks ({dist.get_backend()})" if _running() else "1 process"


def rank_device(device: torch.device) -> torch.device:
    """A GPU device names this rank's own GPU (``LOCAL_RANK``) when none is given."""
    if device.type == "cuda" and device.index is None and world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def check_batch(batch_size: int, train_size: int | None = None, ranks: int | None = None) -> None:
    """Refuse a global batch the ranks cannot share equally.

    Equal shares are what make DDP's averaged gradient the gradient of the mean loss
    over the global batch. A dataset smaller than one batch trains on a partial one
    in one process, which cannot be shared equally either.
    """
    n = ranks or world_size()
    if n > 1 and batch_size % n:
        lower, higher = batch_size - batch_size % n, batch_size + n - batch_size % n
        near = f"{lower} or {higher}" if lower else str(higher)
        raise UsageError(
            f"{batch_size} does not divide by the {n} ranks (each rank trains on an equal "
            f"share of every batch); give a multiple of {n}, such as {near}",
            option="batch_size",
        )
    if n > 1 and train_size is not None and train_size < batch_size:
        raise UsageError(
            f"{batch_size} is more than the {train_size:,} training images; with {n} ranks "
            "every batch must be full: give a smaller batch or more images",
            option="batch_size",
        )


def share(n: int) -> slice:
    """This rank's contiguous share of ``n`` items (evaluation; sizes differ by at most 1)."""
    w, r = world_size(), rank()
    return slice(r * n // w, (r + 1) * n // w)


def sum_ranks(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the ranks, as a new tensor on every rank."""
    if world_size() == 1:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t


# --- the model ----------------------------------------------------------------------


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The module to train: ``model`` itself in one process, else ``model`` with BatchNorm
    over the global batch, in ``DistributedDataParallel``.

    ``model`` keeps its parameters (the optimiser's) and is what evaluation and
    checkpoints use. Its BatchNorm layers are swapped in place: torch's
    ``SyncBatchNorm`` on a GPU (it has no CPU kernel), :class:`SharedBatchNorm` on
    the CPU. With either, a batch is normalised with the statistics of the whole
    global batch, as in one process, and the running statistics stay the same on
    every rank, so DDP need not broadcast buffers.
    """
    if world_size() == 1:
        return model
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(model)  # swaps the children in place
    else:
        _share_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    # no buffer broadcast before each forward: they are the same on every rank already
    # (newer torch names the option forward_sync_buffers)
    params = inspect.signature(DistributedDataParallel).parameters
    quiet = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    return DistributedDataParallel(model, device_ids=ids, **{quiet: False})


class _SumOverRanks(torch.autograd.Function):
    """An all-reduce that gradients flow through: every rank's loss depends on the sum,
    so the gradient of each rank's share is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SharedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm (any rank of input) whose training statistics cover every rank's share.

    One all-reduce of the per-channel sums of x and x² per forward and one per
    backward. In evaluation it is plain BatchNorm with the running statistics.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or world_size() == 1:
            return F.batch_norm(
                x,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                self.training,
                self.momentum,
                self.eps,
            )
        dims = [0, *range(2, x.dim())]
        c = x.shape[1]
        sums = _SumOverRanks.apply(torch.cat([x.sum(dims), (x * x).sum(dims)]))
        n = x.numel() // c * world_size()  # equal shares: the global batch's count
        mean = sums[:c] / n
        var = (sums[c:] / n - mean * mean).clamp_min(0)
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        shape = [1, c] + [1] * (x.dim() - 2)
        with torch.no_grad():  # as F.batch_norm: momentum, and the unbiased variance
            self.num_batches_tracked += 1
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1, 1)), alpha=m)
        return torch.addcmul(shift.view(shape), x, scale.view(shape))


def _share_batchnorm(module: nn.Module) -> None:
    """Swap every BatchNorm below ``module`` for a SharedBatchNorm holding the same
    parameters and buffers (the optimiser's tensors)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            # the models' BatchNorm layers: affine, with running statistics and a momentum
            if not (child.affine and child.track_running_stats and child.momentum):
                raise MnistlabError(
                    f"{name}: distributed training takes BatchNorm with affine parameters, "
                    "running statistics and a momentum"
                )
            shared = SharedBatchNorm(child.num_features, child.eps, child.momentum)
            shared.weight, shared.bias = child.weight, child.bias
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(shared, buffer, getattr(child, buffer))
            shared.train(child.training)
            setattr(module, name, shared)
        else:
            _share_batchnorm(child)


# --- agreeing -----------------------------------------------------------------------


class ReportedByMain(MnistlabError):
    """On the other ranks, an error rank 0 reports: they exit with its status, quietly."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def reported_by_main(error: MnistlabError) -> MnistlabError:
    """``error`` on rank 0; :class:`ReportedByMain` elsewhere. For an error all ranks
    reach together (a check they agree on), so that the user reads it once."""
    if is_main():
        return error
    return ReportedByMain(str(error), error.exit_code)


def agree(step: Callable[[], T]) -> T:
    """``step()`` on every rank; if it fails on any, it fails on all and rank 0 says why.

    A rank that failed alone would leave the others waiting in their next
    collective until torchrun kills them, and the message would be on that rank.
    """
    if world_size() == 1:
        return step()
    try:
        result, error = step(), None
    except Exception as e:
        result, error = None, e
    mine = None if error is None else (getattr(error, "exit_code", 1), _message(error))
    failures = [None] * world_size()
    dist.all_gather_object(failures, mine)
    failed = [(r, f) for r, f in enumerate(failures) if f is not None]
    if not failed:
        return result
    code, message = failed[0][1]
    if not is_main():
        raise ReportedByMain(message, code)
    if error is not None:
        raise error
    elsewhere = MnistlabError(f"rank {failed[0][0]}: {message}")
    elsewhere.exit_code = code
    raise elsewhere


def on_main(step: Callable[[], T]) -> T:
    """``step()`` on rank 0 alone (files are its job), its result sent to every rank."""
    if world_size() == 1:
        return step()
    box = [agree(lambda: step() if is_main() else None)]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _message(error: Exception) -> str:
    if isinstance(error, MnistlabError):
        return error.cli_message()
    return f"{type(error).__name__}: {error}"


class AgreedStop:
    """Ctrl-C as all ranks see it: ``requested`` once any rank's ``StopFlag`` was.

    Reading it is a collective, so every rank must read it at the same points (the
    loop reads it once per step, ``fit`` once per epoch): then all stop after the
    same step. ``every`` > 1 reads across ranks only every so many times (a GPU
    run need not pay a round trip per step); in between it answers no.
    """

    def __init__(self, flag, every: int = 1):
        self.flag, self.every, self._reads = flag, every, 0

    @property
    def requested(self) -> bool:
        if world_size() == 1:
            return self.flag.requested
        self._reads += 1
        if self._reads % self.every:
            return False
        t = torch.tensor([float(self.flag.requested)])  # CPU: gloo, no GPU sync
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


def check_same_result(model: nn.Module, history: list[dict]) -> None:
    """Refuse to end unless every rank holds rank 0's weights and metrics (timings aside).

    DDP guarantees it when nothing else differs between ranks; this checks it.
    """
    if world_size() == 1:
        return
    h = hashlib.sha256()
    for name, value in model.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    untimed = [{k: v for k, v in r.items() if "seconds" not in k} for r in history]
    h.update(json.dumps(untimed, sort_keys=True).encode())
    digests = [None] * world_size()
    dist.all_gather_object(digests, h.hexdigest())
    differ = [r for r, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise reported_by_main(
            MnistlabError(
                f"rank(s) {', '.join(map(str, differ))} ended with other weights or metrics "
                "than rank 0; this is a bug in mnistlab's distributed training: please report it"
            )
        )
