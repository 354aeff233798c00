"""Convolution and pooling as matrix products over unfolded patches, both directions by hand.

``im2col`` lays every k x k patch of the input out as a column:
``(N, C, H, W) -> (N, C*k*k, L)`` with ``L = OH * OW`` patch positions. Then

* convolution is one matrix product: ``W (O, C*k*k) @ cols -> (N, O, L)``;
* max pooling is a max down each column (per channel), average pooling a mean.

The backward passes are written out in ``torch.autograd.Function``s:

* conv: ``dW = sum_n dY_n @ cols_n^T``, ``db = sum dY``, ``dcols = W^T @ dY``, and
  ``dX = col2im(dcols)``, which adds each column back onto the pixels it came from
  (``F.fold``, the adjoint of ``F.unfold``);
* max pool: the gradient goes to the argmax of each column, then ``col2im``;
* average pool: each column element gets ``dY / k^2``, then ``col2im``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import ConvBase

__all__ = ["AvgPool2d", "Conv2d", "MaxPool2d", "conv2d", "pool2d"]


class _Conv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        n, _, h, w = x.shape
        o, _, k, _ = weight.shape
        oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
        cols = F.unfold(x, k, padding=padding, stride=stride)  # (N, C*k*k, L)
        out = weight.reshape(o, -1) @ cols  # (N, O, L)
        if bias is not None:
            out = out + bias.view(1, -1, 1)
        ctx.save_for_backward(cols, weight)
        ctx.geometry = (h, w, k, stride, padding, bias is not None)
        return out.view(n, o, oh, ow)

    @staticmethod
    def backward(ctx, grad_out):
        cols, weight = ctx.saved_tensors
        h, w, k, stride, padding, has_bias = ctx.geometry
        n, o = grad_out.shape[:2]
        dy = grad_out.reshape(n, o, -1)  # (N, O, L)
        grad_w = (dy @ cols.transpose(1, 2)).sum(0).view_as(weight)  # (O, C*k*k)
        grad_b = dy.sum(dim=(0, 2)) if has_bias else None
        dcols = weight.reshape(o, -1).t() @ dy  # (N, C*k*k, L)
        grad_x = F.fold(dcols, (h, w), k, padding=padding, stride=stride)  # (N, C, H, W)
        return grad_x, grad_w, grad_b, None, None


def conv2d(x, weight, bias=None, stride: int = 1, padding: int = 0) -> torch.Tensor:
    return _Conv2dFn.apply(x, weight, bias, stride, padding)


class _Pool2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, k, stride, padding, mode):
        n, c, h, w = x.shape
        oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
        planes = x.reshape(n * c, 1, h, w)  # pool each channel on its own
        if mode == "max" and padding:
            # pad with -inf so that padding is never the maximum
            planes = F.pad(planes, (padding,) * 4, value=float("-inf"))
            cols = F.unfold(planes, k, stride=stride)  # (N*C, k*k, L)
        else:
            cols = F.unfold(planes, k, padding=padding, stride=stride)
        if mode == "max":
            out, idx = cols.max(dim=1)  # (N*C, L)
            ctx.save_for_backward(idx)
        else:
            out = cols.mean(dim=1)
        ctx.geometry = (n, c, h, w, k, stride, padding, mode, cols.shape)
        return out.view(n, c, oh, ow)

    @staticmethod
    def backward(ctx, grad_out):
        n, c, h, w, k, stride, padding, mode, cols_shape = ctx.geometry
        dy = grad_out.reshape(n * c, 1, -1)  # (N*C, 1, L)
        if mode == "max":
            (idx,) = ctx.saved_tensors
            dcols = torch.zeros(cols_shape, dtype=grad_out.dtype, device=grad_out.device)
            dcols.scatter_(1, idx.unsqueeze(1), dy)  # the gradient goes to each window's max
        else:
            dcols = dy.expand(cols_shape) / (k * k)
        if mode == "max" and padding:
            hp, wp = h + 2 * padding, w + 2 * padding
            grad = F.fold(dcols, (hp, wp), k, stride=stride)[
                ..., padding:-padding, padding:-padding
            ]
        else:
            grad = F.fold(dcols, (h, w), k, padding=padding, stride=stride)
        return grad.reshape(n, c, h, w), None, None, None, None


def pool2d(x, kernel_size: int, stride: int | None = None, padding: int = 0, mode="max"):
    return _Pool2dFn.apply(x, kernel_size, stride or kernel_size, padding, mode)


class Conv2d(ConvBase):
    """Drop-in for ``torch.nn.Conv2d`` (square kernel, int stride and padding)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding)


class MaxPool2d(nn.Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool2d(x, self.kernel_size, self.stride, self.padding, "max")


class AvgPool2d(MaxPool2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool2d(x, self.kernel_size, self.stride, self.padding, "mean")
