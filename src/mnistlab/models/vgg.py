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

from ._registry import register_model


def _block(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


@register_model("best", source="mnistlab: BN conv stack after An et al. 2020, with augmentation")
def best(num_classes: int = 10, width: int = 32) -> nn.Module:
    """Six 3x3 conv-BN-ReLU layers (two with stride 2), global average pool, BN'd fc."""
    w = width
    return nn.Sequential(
        *_block(1, w),  # (N, 32, 28, 28)
        *_block(w, w),  # (N, 32, 28, 28)
        *_block(w, 2 * w, stride=2),  # (N, 64, 14, 14)
        *_block(2 * w, 2 * w),  # (N, 64, 14, 14)
        *_block(2 * w, 4 * w, stride=2),  # (N, 128, 7, 7)
        *_block(4 * w, 4 * w),  # (N, 128, 7, 7)
        nn.AdaptiveAvgPool2d(1),  # (N, 128, 1, 1)
        nn.Flatten(),  # (N, 128)
        nn.Linear(4 * w, num_classes, bias=False),
        nn.BatchNorm1d(num_classes),  # as in An et al.: BN on the logits
    )
