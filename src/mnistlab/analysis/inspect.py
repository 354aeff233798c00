"""Looking inside a network: feature maps for one input and first-layer kernels."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..data.normalize import normalize

__all__ = ["conv_kernels", "feature_maps", "inspect_model"]


@torch.inference_mode()
def feature_maps(model: nn.Module, image: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Each Conv2d's output for one uint8 image ``(1, 28, 28)``: ``[(name, (C, H, W))]``."""
    meta = model.meta
    maps: list[tuple[str, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o, name=name: maps.append((name, o[0].cpu())))
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    ]
    model.eval()
    try:
        x = normalize(image.unsqueeze(0), meta.mean, meta.std)  # (1, 1, 28, 28)
        logits = model(x.to(next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    maps.append(("softmax", torch.softmax(logits[0].float(), 0).cpu()))
    return maps


def conv_kernels(model: nn.Module, layers: int = 2) -> list[tuple[str, torch.Tensor]]:
    """The weights ``(C_out, C_in, k, k)`` of the first ``layers`` Conv2d layers."""
    convs = [
        (n, m.weight.detach().cpu()) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)
    ]
    return convs[:layers]


def inspect_model(
    model: nn.Module, image: torch.Tensor, out_dir: str | os.PathLike, label: str = ""
) -> list[Path]:
    """Write input.png, one features_<layer>.png per conv layer and kernels_<layer>.png."""
    from .plots.inspect import plot_input, plot_kernels, plot_maps

    out = Path(out_dir)
    maps = feature_maps(model, image)
    probs = maps.pop()[1]
    names = model.meta.class_names
    files = [plot_input(image[0].cpu().numpy(), probs, names, out / "input.png", label)]
    for i, (name, fmap) in enumerate(maps):
        title = f"Conv2d '{name}' · output (C, H, W) = {tuple(fmap.shape)}"
        files.append(plot_maps(fmap, title, out / f"features_{i:02d}_{_safe(name)}.png"))
    for name, w in conv_kernels(model):
        title = f"Conv2d '{name}' · kernels (out, in, k, k) = {tuple(w.shape)}"
        files.append(plot_kernels(w, title, out / f"kernels_{_safe(name)}.png"))
    return files


def _safe(name: str) -> str:
    return name.replace(".", "_") or "layer"
