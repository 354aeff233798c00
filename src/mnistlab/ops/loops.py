"""Convolution and pooling by their definitions, as a teacher writes them on the board.

Each output pixel is computed in a Python loop over output positions: a
``k x k`` window of the (padded) input times the kernel, summed. Batch and
channels are handled by broadcasting inside the loop, which keeps it readable
without making it unbearably slow. The backward pass is left to autograd.
Same interface and parameter names as ``torch.nn.Conv2d`` / ``MaxPool2d`` /
``AvgPool2d`` (square kernels, int stride and padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import ConvBase

__all__ = ["AvgPool2d", "Conv2d", "MaxPool2d"]


def _out_size(size: int, k: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - k) // stride + 1


class Conv2d(ConvBase):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, p = self.kernel_size, self.stride, self.padding
        x = F.pad(x, (p, p, p, p))  # (N, C, H + 2p, W + 2p)
        h, w = x.shape[-2:]
        oh, ow = _out_size(h, k, s, 0), _out_size(w, k, s, 0)
        rows = []
        for i in range(oh):
            cols = []
            for j in range(ow):
                window = x[:, None, :, i * s : i * s + k, j * s : j * s + k]  # (N, 1, C, k, k)
                cols.append((window * self.weight).sum(dim=(2, 3, 4)))  # (N, O)
            rows.append(torch.stack(cols, dim=-1))  # (N, O, OW)
        out = torch.stack(rows, dim=-2)  # (N, O, OH, OW)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


class _Pool2d(nn.Module):
    reduce = None  # "max" or "mean"

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = stride or kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, p = self.kernel_size, self.stride, self.padding
        # max pooling pads with -inf (never chosen); average pooling counts the zeros,
        # as torch's AvgPool2d does by default (count_include_pad=True)
        x = F.pad(x, (p, p, p, p), value=float("-inf") if self.reduce == "max" else 0.0)
        _, _, h, w = x.shape
        oh, ow = _out_size(h, k, s, 0), _out_size(w, k, s, 0)
        out = []
        for i in range(oh):
            for j in range(ow):
                window = x[:, :, i * s : i * s + k, j * s : j * s + k].flatten(2)  # (N, C, k*k)
                # max(dim) sends the gradient to one element, as torch.nn.MaxPool2d does
                out.append(window.max(-1).values if self.reduce == "max" else window.mean(-1))
        return torch.stack(out, dim=-1).unflatten(-1, (oh, ow))  # (N, C, OH, OW)


class MaxPool2d(_Pool2d):
    reduce = "max"


class AvgPool2d(_Pool2d):
    reduce = "mean"
