"""Convolution and pooling written from scratch, swappable with torch's own.

``layers(ops)`` gives ``(Conv2d, MaxPool2d, AvgPool2d)`` for ``ops`` in
``"torch"`` (torch.nn), ``"im2col"`` (unfold + matmul, hand-written backward) or
``"loops"`` (the definition, output pixel by output pixel). All three have the
same constructor arguments and parameter names, so weights move between them.
"""

from __future__ import annotations

from torch import nn

from ..errors import UsageError
from . import im2col, loops

__all__ = ["OPS", "UnknownOps", "layers"]

OPS = ("torch", "im2col", "loops")


class UnknownOps(UsageError, ValueError):
    """An ``ops`` name not in ``OPS``: a usage error (exit 2), and a ValueError as before."""


def layers(ops: str = "torch"):
    if ops == "torch":
        return nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d
    if ops == "im2col":
        return im2col.Conv2d, im2col.MaxPool2d, im2col.AvgPool2d
    if ops == "loops":
        return loops.Conv2d, loops.MaxPool2d, loops.AvgPool2d
    raise UnknownOps(f"must be one of {', '.join(OPS)}, got {ops!r}", option="ops")
