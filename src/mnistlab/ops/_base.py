"""What the from-scratch Conv2d layers share: torch.nn.Conv2d's parameters and init."""

from __future__ import annotations

import math

import torch
from torch import nn


class ConvBase(nn.Module):
    """Parameters named and initialised as in ``torch.nn.Conv2d`` (square kernel,
    int stride and padding), so state dicts move freely between implementations."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
            nn.init.uniform_(self.bias, -bound, bound)
