"""Readable layer names for models built in a loop."""

from __future__ import annotations

from collections import Counter, OrderedDict

from torch import nn


def named_sequential(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    """``nn.Sequential`` of ``(kind, module)`` pairs, each named by its kind and, where
    the kind occurs more than once, its count: conv, relu, conv -> conv1, relu, conv2.

    Names rather than ``nn.Sequential``'s ``0, 1, 2 ...`` are what ``mnistlab summary``,
    ``mnistlab inspect`` and the checkpoint's tensors (``fc1.weight``) show.
    """
    total = Counter(kind for kind, _ in layers)
    seen: Counter[str] = Counter()
    named: OrderedDict[str, nn.Module] = OrderedDict()
    for kind, module in layers:
        seen[kind] += 1
        named[f"{kind}{seen[kind]}" if total[kind] > 1 else kind] = module
    return nn.Sequential(named)
