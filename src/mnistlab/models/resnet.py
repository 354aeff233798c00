"""Residual networks: the course seed 000 follows, and ``best``'s building blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity skip: ``relu(x + conv2(relu(conv1(x))))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))  # same shape as x
        return F.relu(x + y)


class ResNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5)
        self.block1 = ResidualBlock(16)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.block2 = ResidualBlock(32)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))  # (N, 16, 24, 24) -> (N, 16, 12, 12)
        x = self.block1(x)  # (N, 16, 12, 12)
        x = self.pool(F.relu(self.conv2(x)))  # (N, 32, 8, 8) -> (N, 32, 4, 4)
        x = self.block2(x)  # (N, 32, 4, 4)
        return self.fc(x.flatten(1))  # (N, 512) -> (N, 10)


@register_model("resnet", source="seed 000 (course): two residual blocks, fc 512-10")
def resnet(num_classes: int = 10) -> nn.Module:
    """conv 16@5x5, residual block, conv 32@5x5, residual block, fc 512-10."""
    return ResNet(num_classes)
