"""The data path the seeds use, rebuilt without torchvision, for side-by-side timing.

Every seed loads MNIST as ``torchvision.datasets.MNIST(transform=Compose([ToTensor(),
Normalize(mean, std)]))`` through a ``DataLoader``: per image, a PIL image is made
from the uint8 array, converted to a float tensor, normalised, and the batch is
assembled by the default collate. torchvision cannot be imported beside the CPU
torch build used here, so this module reproduces that exact sequence of steps.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..data.normalize import standardize

__all__ = ["PerSampleMNIST", "persample_loader"]


def _to_tensor(img: Image.Image) -> torch.Tensor:
    # what transforms.ToTensor does for a mode "L" image: (H, W) uint8 -> (1, H, W) in [0, 1]
    t = torch.from_numpy(np.array(img, np.uint8, copy=True))
    t = t.view(img.size[1], img.size[0], 1).permute(2, 0, 1).contiguous()
    return t.to(torch.float32).div(255)


class PerSampleMNIST(Dataset):
    """``torchvision.datasets.MNIST`` with ``ToTensor`` and ``Normalize``, one image at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float):
        # torchvision keeps the split as uint8 (N, 28, 28) and int64 labels on the CPU
        self.data = images.reshape(-1, 28, 28).cpu()
        self.targets = labels.cpu()
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img, target = self.data[i], int(self.targets[i])
        img = Image.fromarray(img.numpy())  # mode "L", inferred from uint8 (H, W)
        x = _to_tensor(img)  # (1, 28, 28)
        x = standardize(x, self.mean, self.std)  # transforms.Normalize, in place as it does
        return x, target


def persample_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    mean: float,
    std: float,
    seed: int = 0,
    shuffle: bool = True,
) -> DataLoader:
    """The seeds' ``DataLoader(dataset, batch_size, shuffle=True)``: no workers, last batch kept."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        PerSampleMNIST(images, labels, mean, std),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=gen,
    )
