"""Fully connected networks on the flattened 784-pixel image."""

from __future__ import annotations

import itertools

from torch import nn

from ._naming import named_sequential
from ._registry import register_model


def _mlp(widths: list[int], num_classes: int) -> nn.Sequential:
    # named flatten, fc1, relu1, fc2 ... (a lone linear layer is just fc)
    layers = [("flatten", nn.Flatten())]  # (N, 1, 28, 28) -> (N, 784)
    for w_in, w_out in itertools.pairwise([784, *widths]):
        layers += [("fc", nn.Linear(w_in, w_out)), ("relu", nn.ReLU())]
    layers.append(("fc", nn.Linear(widths[-1] if widths else 784, num_classes)))  # logits
    return named_sequential(*layers)


@register_model("mlp", source="seed 002: 784-256-64-10 MLP, trained there with MSE on one-hot")
def mlp(num_classes: int = 10) -> nn.Module:
    """MLP 784-256-64-10 with ReLU (218,058 parameters)."""
    # (N, 784) -> (N, 256) -> (N, 64) -> (N, 10)
    return _mlp([256, 64], num_classes)


@register_model("softmax", source="LeCun et al. 1998: the linear classifier, about 12% error")
def softmax(num_classes: int = 10) -> nn.Module:
    """One linear layer 784-10: multinomial logistic regression (7,850 parameters)."""
    return _mlp([], num_classes)


@register_model("linear", source="seed 000 (course): the fully connected 'Linear' network")
def linear(num_classes: int = 10) -> nn.Module:
    """MLP 784-512-256-128-64-10 with ReLU (575,050 parameters)."""
    return _mlp([512, 256, 128, 64], num_classes)


@register_model("mlp-small", source="seed 001: the MLP compared with LeNet-5")
def mlp_small(num_classes: int = 10) -> nn.Module:
    """MLP 784-128-64-10 with ReLU (109,386 parameters)."""
    return _mlp([128, 64], num_classes)
