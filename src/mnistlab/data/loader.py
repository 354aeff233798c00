"""Device-resident data, in the style of airbench.

A whole split lives on the device as one uint8 tensor ``(N, 1, 28, 28)``; a batch is
an index into it, taken from a permutation seeded by (seed, epoch), and is
normalised on the fly. There are no worker processes and no per-sample Python,
and an epoch's order can be recreated exactly, which is what makes resuming in the
middle of an epoch land where an uninterrupted run would.

In distributed training (``train/dist.py``) each rank holds the whole split, draws
the same order and takes its own contiguous share of every batch: together the
ranks see exactly the batches one process would.

With ``outliers`` (uint8 images that are no digit, ``data/outliers.py``) every batch
also carries ``outlier_rows`` of them, drawn at random, augmented with the digits
and labelled -1, after the digits: the loss teaches the model to say "not a digit"
(outlier exposure, ``train/optim.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..errors import UsageError
from .datasets import DatasetInfo, get_dataset, load_arrays
from .normalize import normalize, standardize

__all__ = ["DeviceLoader", "MnistData", "hold_out", "load_data", "load_split", "normalize"]

Augment = Callable[..., torch.Tensor]  # (x, generator, labels) -> x


@dataclass
class MnistData:
    info: DatasetInfo
    train: tuple[torch.Tensor, torch.Tensor]  # uint8 (N, 1, 28, 28), int64 (N,)
    val: tuple[torch.Tensor, torch.Tensor] | None
    test: tuple[torch.Tensor, torch.Tensor]


def load_data(
    dataset: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    val_size: int = 5000,
    seed: int = 0,
    train_subset: int | None = None,
) -> MnistData:
    """Load train/val/test onto ``device``; ``val_size`` images are held out of train.

    The validation indices come from a permutation seeded by ``seed``, so the same
    seed always holds out the same images. ``train_subset`` keeps the first N of
    what remains (after the seeded shuffle), for quick or seed-faithful small runs.
    """
    info = get_dataset(dataset)
    x_tr, y_tr = load_split(dataset, "train", data_dir, device)
    x_te, y_te = load_split(dataset, "test", data_dir, device)
    (x_tr, y_tr), val = hold_out(x_tr, y_tr, val_size, seed, train_subset)
    return MnistData(info, (x_tr, y_tr), val, (x_te, y_te))


def hold_out(
    x: torch.Tensor, y: torch.Tensor, val_size: int, seed: int, train_subset: int | None = None
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
    """(train, val): ``val_size`` images picked by a permutation seeded with ``seed``."""
    n = len(x)
    if not 0 <= val_size < n:
        raise UsageError(f"must be between 0 and {n - 1}, got {val_size}", option="val_size")
    val = None
    if val_size or train_subset:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(x.device)
        val_idx, tr_idx = perm[:val_size], perm[val_size:]
        if train_subset:
            if train_subset < 1:
                raise UsageError(f"must be positive, got {train_subset}", option="train_subset")
            tr_idx = tr_idx[:train_subset]
        if val_size:
            val = (x[val_idx], y[val_idx])
        x, y = x[tr_idx], y[tr_idx]
    return (x, y), val


def load_split(
    dataset: str, split: str, data_dir: str | os.PathLike | None = None, device="cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One whole split on ``device``: uint8 images ``(N, 1, 28, 28)`` and int64 labels."""
    images, labels = load_arrays(dataset, split, data_dir)
    x = torch.from_numpy(images.copy()).unsqueeze(1).to(device)  # (N, 1, 28, 28) uint8
    y = torch.from_numpy(labels.astype("int64")).to(device)  # (N,)
    return x, y


def _all(t: torch.Tensor) -> torch.Tensor:
    return t


class DeviceLoader:
    """Batches ``(x_normalised, y)`` from tensors already on the device.

    ``batches(epoch, start, stop)`` yields the epoch's batches from number ``start``
    up to ``stop`` (default: the last); the order depends only on ``(seed, epoch)``.
    With ``world_size`` > 1 it yields rank ``rank``'s share of each batch: rows
    ``rank * k`` to ``(rank + 1) * k`` of it, ``k = batch_size // world_size``,
    augmented as in one process.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        mean: float,
        std: float,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        max_batches: int | None = None,
        augment: Augment | None = None,
        rank: int = 0,
        world_size: int = 1,
        outliers: torch.Tensor | None = None,
        outlier_rows: int = 0,
    ):
        if batch_size < 1:
            raise UsageError(f"must be at least 1, got {batch_size}", option="batch_size")
        if world_size > 1 and (batch_size % world_size or not drop_last):
            raise UsageError(
                f"{batch_size} does not divide into {world_size} equal shares of full batches",
                option="batch_size",
            )
        self.images, self.labels = images, labels
        self.batch_size, self.mean, self.std = batch_size, mean, std
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.max_batches, self.augment = max_batches, augment
        self.rank, self.world_size = rank, world_size
        if outliers is None or len(outliers) == 0:
            outlier_rows = 0
        if outlier_rows % world_size:
            raise UsageError(
                f"{outlier_rows} outliers a batch do not divide into {world_size} equal shares",
                option="outliers",
            )
        self.outliers, self.outlier_rows = outliers, outlier_rows

    @property
    def rank_outliers(self) -> int:
        """The outlier rows (the last ones) of each batch this rank yields."""
        return self.outlier_rows // self.world_size

    def __len__(self) -> int:
        n = len(self.images)
        full = n // self.batch_size
        count = full if self.drop_last or n % self.batch_size == 0 else full + 1
        if self.drop_last and full == 0:
            count = 1  # a dataset smaller than one batch still trains on what it has
        return min(count, self.max_batches) if self.max_batches else count

    def _generator(self, epoch: int) -> torch.Generator:
        # Distinct, reproducible stream per (seed, epoch); large odd multiplier avoids
        # (seed, epoch) pairs that would collide under a plain sum.
        return torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)

    def batches(
        self, epoch: int = 0, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs = len(self.images), self.batch_size
        gen = self._generator(epoch)
        order = torch.randperm(n, generator=gen).to(self.images.device) if self.shuffle else None
        # this rank's rows of each batch, or all of them to augment (see below)
        pick = self._share if self.augment is None else _all
        end = len(self) if stop is None else min(stop, len(self))
        for b in range(start, end):
            sl = slice(b * bs, min((b + 1) * bs, n))
            if order is None:
                x, y = pick(self.images[sl]), pick(self.labels[sl])
            else:
                idx = pick(order[sl])
                # index_select: a 128-row gather in 9 µs where x[idx] takes 53 (2 threads)
                x, y = self.images.index_select(0, idx), self.labels.index_select(0, idx)
            # a per-batch stream: a resumed epoch draws and augments batch b as before
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 100_003 + b)
            if self.outlier_rows:
                x, y = self._with_outliers(x, y, gen)
            if self.augment is None:
                x = normalize(x, self.mean, self.std)  # (B, 1, 28, 28) float32
            else:
                # augment in [0, 1], where the black border is 0
                x = self.augment(x.to(torch.float32).div_(255.0), gen, y)
                # An augmentation draws its numbers for the whole batch from one stream,
                # so each rank augments the whole batch and keeps its rows: the pixels
                # one process would train on, for the cost of augmenting them all
                x, y = self._share(x, mixed=True), self._share(y, mixed=True)
                x = standardize(x, self.mean, self.std)
            yield x, y

    def _with_outliers(self, x, y, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's digits followed by ``outlier_rows`` outliers drawn at random,
        labelled -1 (unaugmented batches: this rank's share of them only)."""
        pick = torch.randint(len(self.outliers), (self.outlier_rows,), generator=gen)
        out = self.outliers.index_select(0, pick.to(self.outliers.device))  # (K, 1, 28, 28)
        if self.augment is None:
            k = self.rank_outliers
            out = out[self.rank * k : (self.rank + 1) * k]
        return torch.cat([x, out]), torch.cat([y, y.new_full((len(out),), -1)])

    def _share(self, t: torch.Tensor, mixed: bool = False) -> torch.Tensor:
        """This rank's rows of a batch: all of them in one process. In a ``mixed`` batch
        (digits, then the last ``outlier_rows`` outliers) each rank gets its share of
        both."""
        if self.world_size == 1:
            return t
        k = self.batch_size // self.world_size
        if not (mixed and self.outlier_rows):
            return t[self.rank * k : (self.rank + 1) * k]
        digits, out = t[: -self.outlier_rows], t[-self.outlier_rows :]
        j, r = self.rank_outliers, self.rank
        return torch.cat([digits[r * k : (r + 1) * k], out[r * j : (r + 1) * j]])

    def __iter__(self):
        return self.batches(0)
