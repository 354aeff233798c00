"""Batch augmentations: pure functions of ``(x, generator)`` on ``(N, 1, 28, 28)`` tensors.

They run on the device the batch is on, sample all their randomness from the
given generator (so a seed fixes them), and expect pixels in [0, 1] with a black
(zero) background, which is what fills the borders.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["AUGMENTATIONS", "elastic", "make_augment", "random_affine"]


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * (high - low) + low).to(device)


def random_affine(
    x: torch.Tensor,
    gen: torch.Generator,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
    shear: float = 10.0,
) -> torch.Tensor:
    """Rotate (±degrees), shift (±translate of the size), scale and shear each image."""
    n, dev = x.shape[0], x.device
    rot = _uniform(n, -degrees, degrees, gen, dev) * (math.pi / 180)
    sh = _uniform(n, -shear, shear, gen, dev) * (math.pi / 180)
    s = _uniform(n, *scale, gen, dev)
    # affine_grid works in [-1, 1] coordinates: a shift of t (fraction of size) is 2t
    tx = _uniform(n, -translate, translate, gen, dev) * 2
    ty = _uniform(n, -translate, translate, gen, dev) * 2
    # theta maps output to input coordinates: rotation @ x-shear / scale, then the shift
    cos, sin, tan = torch.cos(rot), torch.sin(rot), torch.tan(sh)
    row0 = torch.stack([cos, cos * tan - sin], 1)
    row1 = torch.stack([sin, sin * tan + cos], 1)
    linear = torch.stack([row0, row1], 1) / s.view(n, 1, 1)  # (N, 2, 2)
    theta = torch.cat([linear, torch.stack([tx, ty], 1).unsqueeze(2)], 2)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, 28, 28, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gaussian_kernel(sigma: float, device) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()  # (2r + 1,)


def elastic(
    x: torch.Tensor, gen: torch.Generator, alpha: float = 34.0, sigma: float = 4.0
) -> torch.Tensor:
    """Elastic distortion (Simard et al. 2003): a random displacement field, smoothed
    with a Gaussian of ``sigma`` pixels and scaled to ``alpha`` pixels."""
    n, _, h, w = x.shape
    field = (torch.rand(n, 2, h, w, generator=gen) * 2 - 1).to(x.device)  # (N, 2, H, W)
    k = _gaussian_kernel(sigma, x.device)
    r = len(k) // 2
    # separable blur; groups=2 keeps the x and y channels apart
    kx, ky = k.view(1, 1, 1, -1).repeat(2, 1, 1, 1), k.view(1, 1, -1, 1).repeat(2, 1, 1, 1)
    field = F.conv2d(F.pad(field, (r, r, 0, 0), mode="replicate"), kx, groups=2)
    field = F.conv2d(F.pad(field, (0, 0, r, r), mode="replicate"), ky, groups=2)
    # pixels -> [-1, 1] grid units
    dx = field[:, 0] * alpha * 2 / w
    dy = field[:, 1] * alpha * 2 / h
    ys, xs = torch.meshgrid(
        torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=x.device),
        torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=x.device),
        indexing="ij",
    )
    grid = torch.stack([xs + dx, ys + dy], dim=-1)  # (N, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


AUGMENTATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "affine": random_affine,
    "elastic": elastic,
}


def make_augment(spec: str):
    """``"none"``, ``"affine"``, ``"elastic"`` or a ``+`` chain such as ``"affine+elastic"``."""
    if spec in ("", "none"):
        return None
    names = spec.split("+")
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}")
    fns = [AUGMENTATIONS[n] for n in names]

    def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for fn in fns:
            x = fn(x, gen)
        return x

    return augment
