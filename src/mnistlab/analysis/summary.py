"""Per-layer shapes, parameters and FLOPs of a model, for ``mnistlab summary``.

FLOPs are counted by ``torch.utils.flop_counter`` on one image: a multiply-add is
2 FLOPs, and only convolutions and matrix products count (activations, pooling
and BatchNorm are memory-bound and left out, as in most papers' figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["LayerRow", "ModelSummary", "count_flops", "summarize"]


@dataclass
class LayerRow:
    name: str  # dotted path in the model, e.g. "incep1.b5x5_2"
    kind: str  # module class
    output_shape: tuple[int, ...]
    params: int  # the module's own parameters (not its children's)
    flops: int  # forward FLOPs per image of this module and its children


@dataclass
class ModelSummary:
    name: str
    rows: list[LayerRow]
    params: int
    trainable: int
    flops: int  # per image

    @property
    def macs(self) -> int:
        return self.flops // 2


def count_flops(model: nn.Module, input_size: tuple[int, ...] = (1, 28, 28)) -> int:
    """Forward FLOPs for one image."""
    return summarize(model, input_size).flops


def summarize(model: nn.Module, input_size: tuple[int, ...] = (1, 28, 28)) -> ModelSummary:
    """Run one zero image through ``model``; one row per leaf-layer call, in call order
    (a layer used twice, like a shared pooling layer, appears twice)."""
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    hooks = []
    for path, module in model.named_modules():
        if path and not list(module.children()):  # leaves only

            def hook(mod, inputs, output, path=path):
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
                calls.append((path, mod, shape))

            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    # the counter names modules "<RootClass>.<path>"
    per_module = {
        k.split(".", 1)[1]: sum(v.values())
        for k, v in counter.get_flop_counts().items()
        if "." in k
    }
    rows, seen = [], set()
    for path, module, shape in calls:
        first = path not in seen  # params and FLOPs are booked on a layer's first call
        seen.add(path)
        params = sum(p.numel() for p in module.parameters(recurse=False)) if first else 0
        flops = per_module.get(path, 0) if first else 0
        rows.append(LayerRow(path, type(module).__name__, shape, params, flops))
    meta = getattr(model, "meta", None)
    return ModelSummary(
        name=meta.name if meta else type(model).__name__,
        rows=rows,
        params=sum(p.numel() for p in model.parameters()),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        flops=counter.get_total_flops(),
    )
