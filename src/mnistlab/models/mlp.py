"""Fully connected networks on the flattened 784-pixel image."""

from __future__ import annotations

from torch import nn

from ._registry import register_model


def _mlp(widths: list[int], num_classes: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]  # (N, 1, 28, 28) -> (N, 784)
    for w_in, w_out in zip([784, *widths[:-1]], widths, strict=True):
        layers += [nn.Linear(w_in, w_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-1] if widths else 784, num_classes))
    return nn.Sequential(*layers)


@register_model("mlp", source="seed 002: 784-256-64-10 MLP, trained there with MSE on one-hot")
def mlp(num_classes: int = 10) -> nn.Module:
    """MLP 784-256-64-10 with ReLU (218,058 parameters)."""
    # (N, 784) -> (N, 256) -> (N, 64) -> (N, 10)
    return _mlp([256, 64], num_classes)
