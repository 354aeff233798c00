"""The GoogLeNet-style network of the course seed 000 follows (Liu Er's PyTorch lectures)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated to 16 + 24 + 24 + 24 = 88 channels.

    1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg-pool 3x3 -> 1x1; padding keeps H x W.
    """

    out_channels = 88

    def __init__(self, in_channels: int):
        super().__init__()
        self.b1x1 = nn.Conv2d(in_channels, 16, 1)
        self.b5x5_1 = nn.Conv2d(in_channels, 16, 1)
        self.b5x5_2 = nn.Conv2d(16, 24, 5, padding=2)
        self.b3x3_1 = nn.Conv2d(in_channels, 16, 1)
        self.b3x3_2 = nn.Conv2d(16, 24, 3, padding=1)
        self.b3x3_3 = nn.Conv2d(24, 24, 3, padding=1)
        self.bpool = nn.Conv2d(in_channels, 24, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.b1x1(x)  # (N, 16, H, W)
        b5 = self.b5x5_2(self.b5x5_1(x))  # (N, 24, H, W)
        b3 = self.b3x3_3(self.b3x3_2(self.b3x3_1(x)))  # (N, 24, H, W)
        bp = self.bpool(F.avg_pool2d(x, 3, stride=1, padding=1))  # (N, 24, H, W)
        return torch.cat([b1, b5, b3, bp], dim=1)  # (N, 88, H, W)


class InceptionNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 5)
        self.incep1 = InceptionBlock(10)
        self.conv2 = nn.Conv2d(88, 20, 5)
        self.incep2 = InceptionBlock(20)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(1408, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.pool(self.conv1(x)))  # (N, 10, 24, 24) -> (N, 10, 12, 12)
        x = self.incep1(x)  # (N, 88, 12, 12)
        x = F.relu(self.pool(self.conv2(x)))  # (N, 20, 8, 8) -> (N, 20, 4, 4)
        x = self.incep2(x)  # (N, 88, 4, 4)
        return self.fc(x.flatten(1))  # (N, 1408) -> (N, 10)


@register_model("inception", source="seed 000 (course): GoogLeNet-style net, two Inception blocks")
def inception(num_classes: int = 10) -> nn.Module:
    """conv 10@5x5, Inception (88), conv 20@5x5, Inception (88), fc 1408-10."""
    return InceptionNet(num_classes)
