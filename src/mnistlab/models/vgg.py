"""``best``: a BatchNorm conv stack for the highest single-model accuracy.

In the spirit of An et al. 2020 ("An Ensemble of Simple Convolutional Neural
Network Models for MNIST Digit Recognition"): plain 3x3 convolutions, each
followed by BatchNorm and ReLU, and a BatchNorm'd linear head, trained with
augmentation. Their M3/M5/M7 use no pooling at all; on a 2-core CPU that costs
~140 MMAC per image, so we keep two stride-2 steps and spend the saved compute on
more epochs, which matters more at this budget.
"""

from __future__ import annotations

from torch import nn

from ._naming import named_sequential
from ._registry import register_model


def _block(c_in: int, c_out: int, stride: int = 1) -> list[tuple[str, nn.Module]]:
    return [
        ("conv", nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)),
        ("bn", nn.BatchNorm2d(c_out)),
        ("relu", nn.ReLU(inplace=True)),
    ]


@register_model("best", source="mnistlab: BN conv stack after An et al. 2020, with augmentation")
def best(num_classes: int = 10, width: int = 32) -> nn.Module:
    """Six 3x3 conv-BN-ReLU layers (two with stride 2), global average pool, BN'd fc."""
    w = width
    # named conv1, bn1, relu1 ... conv6, bn6, relu6, pool, flatten, fc, bn_out
    return named_sequential(
        *_block(1, w),  # conv1: (N, 32, 28, 28)
        *_block(w, w),  # conv2: (N, 32, 28, 28)
        *_block(w, 2 * w, stride=2),  # conv3: (N, 64, 14, 14)
        *_block(2 * w, 2 * w),  # conv4: (N, 64, 14, 14)
        *_block(2 * w, 4 * w, stride=2),  # conv5: (N, 128, 7, 7)
        *_block(4 * w, 4 * w),  # conv6: (N, 128, 7, 7)
        ("pool", nn.AdaptiveAvgPool2d(1)),  # (N, 128, 1, 1)
        ("flatten", nn.Flatten()),  # (N, 128)
        ("fc", nn.Linear(4 * w, num_classes, bias=False)),  # (N, 10)
        ("bn_out", nn.BatchNorm1d(num_classes)),  # as in An et al.: BN on the logits
    )
