"""Normalisation, in one place: uint8 pixels to ``(x / 255 - mean) / std``.

Every path into a model goes through here: the training batches, evaluation,
feature maps, prediction (numpy, for ONNX Runtime too) and the benchmarks'
per-sample loader. MNIST's mean and std are of its 60,000 training images'
pixels scaled to [0, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # tensors are only passed in: numpy users need no torch
    import torch

__all__ = ["MNIST_MEAN", "MNIST_STD", "normalize", "normalize_array", "standardize"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def normalize(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 pixels (0-255) -> float32 ``(x/255 - mean) / std`` in one fused pass."""
    scale = 1.0 / (255.0 * std)
    return images.float().mul_(scale).sub_(mean / std)


def standardize(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Float pixels already in [0, 1] (after augmentation, or ``ToTensor``): in place,
    ``(x - mean) / std``, the two steps of torchvision's ``Normalize``."""
    return x.sub_(mean).div_(std)


def normalize_array(pixels: np.ndarray, mean: float, std: float) -> np.ndarray:
    """uint8 pixels (0-255) as numpy -> float32 ``(x/255 - mean) / std``."""
    return ((pixels.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)
