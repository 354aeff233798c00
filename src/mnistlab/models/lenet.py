"""LeNet: the classic 32x32 LeNet-5 (seed 001) and the 28x28 LeNet (seed 004)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import layers
from ._naming import named_sequential
from ._registry import register_model


class LeNet5(nn.Module):
    """LeNet-5 on 32x32 input, as seed 001 builds it (61,706 parameters).

    Our inputs are 28x28; seed 001 resized them to 32x32 (``Resize(32)``) before
    the network, so the model does the same bilinear resize as its first step.
    """

    def __init__(self, num_classes: int = 10, ops: str = "torch"):
        super().__init__()
        # ops picks the convolution/pooling implementation (see mnistlab.ops); the
        # parameter names are the same for all three, so weights move between them
        conv, maxpool, avgpool = layers(ops)
        self.conv1 = conv(1, 6, 5)
        self.pool1 = maxpool(2)
        self.conv2 = conv(6, 16, 5)
        self.pool2 = avgpool(2)
        self.conv3 = conv(16, 120, 5)
        self.fc1 = nn.Linear(120, 84)
        self.fc2 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
        # (N, 1, 32, 32)
        x = self.pool1(F.relu(self.conv1(x)))  # (N, 6, 28, 28) -> (N, 6, 14, 14)
        x = self.pool2(F.relu(self.conv2(x)))  # (N, 16, 10, 10) -> (N, 16, 5, 5)
        x = F.relu(self.conv3(x)).flatten(1)  # (N, 120, 1, 1) -> (N, 120)
        return self.fc2(F.relu(self.fc1(x)))  # (N, 84) -> (N, 10)


@register_model("lenet5", source="seed 001: LeNet-5 on 32x32 inputs (Resize(32))")
def lenet5(num_classes: int = 10, ops: str = "torch") -> nn.Module:
    """Classic LeNet-5: conv 6@5x5, max-pool, conv 16@5x5, avg-pool, conv 120@5x5, fc 84, fc 10.

    ``ops="im2col"`` or ``"loops"`` swaps in the from-scratch layers of ``mnistlab.ops``.
    """
    return LeNet5(num_classes, ops)


def _lenet28(num_classes: int, bn: bool) -> nn.Sequential:
    # conv1 pads by 2 so that 28x28 keeps its size and fc1 really sees 16*5*5 inputs;
    # seed 004's unpadded conv1 leaves 16*4*4 = 256 and its fc1(400, 120) cannot run.
    # Named conv1, relu1, pool1, conv2 ... fc3 (with bn1-bn4 and dropout1-2 for lenet-bn).
    def conv(c_in, c_out, pad):
        layers = [("conv", nn.Conv2d(c_in, c_out, 5, padding=pad))]
        norm = [("bn", nn.BatchNorm2d(c_out))] if bn else []
        return layers + norm + [("relu", nn.ReLU()), ("pool", nn.MaxPool2d(2))]

    def fc(n_in, n_out):
        layers = [("fc", nn.Linear(n_in, n_out))]
        norm = [("bn", nn.BatchNorm1d(n_out))] if bn else []
        return layers + norm + [("relu", nn.ReLU())]

    def drop():
        return [("dropout", nn.Dropout(0.5))] if bn else []

    return named_sequential(
        *conv(1, 6, 2),  # conv1: (N, 6, 28, 28) -> pool1: (N, 6, 14, 14)
        *conv(6, 16, 0),  # conv2: (N, 16, 10, 10) -> pool2: (N, 16, 5, 5)
        ("flatten", nn.Flatten()),  # (N, 400)
        *drop(),
        *fc(16 * 5 * 5, 120),  # fc1: (N, 120)
        *drop(),
        *fc(120, 84),  # fc2: (N, 84)
        ("fc", nn.Linear(84, num_classes)),  # fc3: (N, 10)
    )


@register_model("lenet", source="seed 004: LeNet on 28x28, conv1 padded by 2 so fc1 fits")
def lenet(num_classes: int = 10) -> nn.Module:
    """LeNet on 28x28: conv 6@5x5 (pad 2), pool, conv 16@5x5, pool, fc 120-84-10 (61,706)."""
    return _lenet28(num_classes, bn=False)


@register_model("lenet-bn", source="seed 004: LeNet with BatchNorm and Dropout")
def lenet_bn(num_classes: int = 10) -> nn.Module:
    """``lenet`` with BatchNorm after every conv and hidden fc layer, Dropout 0.5 before fc."""
    return _lenet28(num_classes, bn=True)
