"""Where the pixels go: the geometric batch augmentations, pure functions of
``(x, generator)`` on ``(N, 1, 28, 28)`` tensors, as in ``augment`` (which holds the
registry and the ink and stroke ones, and re-exports these).

``affine`` and ``elastic`` are the classic MNIST ones; ``affine2`` adds slant and
stretched or narrow digits. ``hflip`` and ``shift`` are for pictures of things rather
than of writing (Fashion-MNIST): a mirrored shirt is still a shirt, a mirrored 2 is no
digit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["elastic", "hflip", "random_affine", "random_affine2", "shift"]


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * (high - low) + low).to(device)


def _chosen(n: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    """A (N,) bool mask: each sample is picked with probability ``p``."""
    return (torch.rand(n, generator=gen) < p).to(device)


def _warp(x: torch.Tensor, linear: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Resample with ``theta = [linear | shift]``, which maps output to input coordinates
    in affine_grid's [-1, 1] units; the border fills with black."""
    theta = torch.cat([linear, shift.unsqueeze(2)], 2)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, 28, 28, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


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
    return _warp(x, linear, torch.stack([tx, ty], 1))


def random_affine2(
    x: torch.Tensor,
    gen: torch.Generator,
    degrees: float = 15.0,
    translate: float = 0.1,
    scale_x: tuple[float, float] = (0.75, 1.1),
    scale_y: tuple[float, float] = (0.85, 1.1),
    shear: float = 20.0,
) -> torch.Tensor:
    """``affine`` with people's range: rotation (±degrees), slant (x-shear, ±shear
    degrees), width and height scaled independently (stretched or narrow digits) and a
    shift (±translate of the size). Draws rotation, shear, x-scale, y-scale, x-shift,
    y-shift in that order."""
    n, dev = x.shape[0], x.device
    rot = _uniform(n, -degrees, degrees, gen, dev) * (math.pi / 180)
    sh = _uniform(n, -shear, shear, gen, dev) * (math.pi / 180)
    sx = _uniform(n, *scale_x, gen, dev)
    sy = _uniform(n, *scale_y, gen, dev)
    tx = _uniform(n, -translate, translate, gen, dev) * 2
    ty = _uniform(n, -translate, translate, gen, dev) * 2
    # output -> input: (rotation @ x-shear) @ diag(1/sx, 1/sy), so the content is
    # rotated and slanted, then its width scaled by sx and its height by sy
    cos, sin, tan = torch.cos(rot), torch.sin(rot), torch.tan(sh)
    row0 = torch.stack([cos / sx, (cos * tan - sin) / sy], 1)
    row1 = torch.stack([sin / sx, (sin * tan + cos) / sy], 1)
    linear = torch.stack([row0, row1], 1)  # (N, 2, 2)
    return _warp(x, linear, torch.stack([tx, ty], 1))


def hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left to right with probability ``p``."""
    flip = _chosen(x.shape[0], p, gen, x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(-1), x)


def shift(x: torch.Tensor, gen: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Move each image by a whole number of pixels, up to ``pixels`` each way in x and
    y (the pad-and-crop of CIFAR-style training); the border fills with black. Indexing,
    not resampling: every pixel keeps its exact value."""
    n, _, h, w = x.shape
    k = torch.randint(-pixels, pixels + 1, (n, 2), generator=gen).to(x.device)  # (dx, dy)
    padded = F.pad(x, (pixels, pixels, pixels, pixels))
    # output pixel (r, c) is input pixel (r - dy, c - dx), found in the padded image
    rows = torch.arange(h, device=x.device) + pixels - k[:, 1:]  # (N, H)
    cols = torch.arange(w, device=x.device) + pixels - k[:, :1]  # (N, W)
    which = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded[which, :, rows.view(n, h, 1), cols.view(n, 1, w)]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


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
