"""Batch augmentations: pure functions of ``(x, generator)`` on ``(N, 1, 28, 28)`` tensors.

They run on the device the batch is on, sample all their randomness from the
given generator (so a seed fixes them), and expect pixels in [0, 1] with a black
(zero) background, which is what fills the borders.

``affine`` and ``elastic`` are the classic MNIST ones. The others model how people
write and how their digits reach us: ``affine2`` adds slant and stretched or narrow
digits (x and y scaled apart), ``thickness`` thin pens and thick markers, ``ink``
the profile of a stroke's edge (gamma, faint ink, binary scans), ``blur`` soft
sources and ``lowres`` coarse ones (an 8x8 or 16x16 scan, a thumbnail) enlarged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "AUGMENTATIONS",
    "blur",
    "elastic",
    "ink",
    "lowres",
    "make_augment",
    "random_affine",
    "random_affine2",
    "thickness",
]


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


def _dilate(x: torch.Tensor) -> torch.Tensor:
    """Grey-level dilation by a 3x3 square: every stroke 1 px wider on each side."""
    # shifted maxima, separable: 0.4 ms a batch of 256 on one CPU core, max_pool2d 6 ms
    p = F.pad(x, (1, 1, 1, 1))  # (N, 1, 30, 30), black outside
    h = torch.maximum(torch.maximum(p[..., :-2], p[..., 1:-1]), p[..., 2:])  # (N, 1, 30, 28)
    return torch.maximum(torch.maximum(h[..., :-2, :], h[..., 1:-1, :]), h[..., 2:, :])


def _thin(x: torch.Tensor) -> torch.Tensor:
    """A soft erosion, every stroke 1 px thinner in all: each pixel becomes the mean of
    the minima of the four 2x2 windows that hold it (half a pixel off each side; a
    3x3 erosion would take a whole one and wipe out most MNIST strokes)."""
    p = F.pad(x, (1, 1, 1, 1))  # (N, 1, 30, 30), black outside
    h = torch.minimum(p[..., :-1], p[..., 1:])  # (N, 1, 30, 29)
    m = torch.minimum(h[..., :-1, :], h[..., 1:, :])  # (N, 1, 29, 29): each 2x2 window
    return (m[..., :-1, :-1] + m[..., :-1, 1:] + m[..., 1:, :-1] + m[..., 1:, 1:]) / 4


def _steps(x: torch.Tensor, k: torch.Tensor, step, most: float) -> torch.Tensor:
    """``k`` (N, 1, 1, 1) applications of ``step`` to ``x``, blended for fractions."""
    out, prev = x, x
    for i in range(math.ceil(most)):
        nxt = step(prev)
        out = out + (k - i).clamp(0, 1) * (nxt - prev)
        prev = nxt
    return out


def _top_mean(x: torch.Tensor, k: int = 20) -> torch.Tensor:
    """(N, 1, 1, 1): the mean of each image's ``k`` brightest pixels."""
    return x.flatten(1).topk(k, dim=1).values.mean(1).view(-1, 1, 1, 1)


def thickness(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.5,
    thinner: float = 1 / 3,
    thin_px: tuple[float, float] = (0.5, 2.0),
    thick_px: tuple[float, float] = (0.0, 3.0),
    min_ink: float = 0.1,
) -> torch.Tensor:
    """Thin pens and thick markers: a fraction ``p`` of the images changes its stroke
    width. Of those, a fraction ``thinner`` loses ``thin_px`` pixels of width (soft
    erosion, brightened back so its 20 brightest pixels are as bright as before; not
    applied where it would leave less than ``min_ink`` of the ink), the others gain
    ``thick_px`` (3x3 dilations, 2 px each, blended for fractions). Draws picked,
    thinner, amount in that order; only the picked images are computed."""
    n, dev = x.shape[0], x.device
    picked = _chosen(n, p, gen, dev)
    thin = picked & _chosen(n, thinner, gen, dev)
    u = torch.rand(n, generator=gen).to(dev).view(n, 1, 1, 1)
    out = x.clone()
    i = torch.nonzero(picked & ~thin).flatten()
    if len(i):
        steps = (thick_px[0] + u[i] * (thick_px[1] - thick_px[0])) / 2
        out[i] = _steps(x[i], steps, _dilate, thick_px[1] / 2)
    i = torch.nonzero(thin).flatten()
    if len(i):
        xi = x[i]
        steps = thin_px[0] + u[i] * (thin_px[1] - thin_px[0])
        eroded = _steps(xi, steps, _thin, thin_px[1])
        kept = (eroded.sum((1, 2, 3)) >= min_ink * xi.sum((1, 2, 3))).view(-1, 1, 1, 1)
        gain = _top_mean(xi) / _top_mean(eroded).clamp(min=1e-6)
        out[i] = torch.where(kept, (eroded * gain).clamp(0, 1), xi)
    return out


def ink(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.5,
    gamma: tuple[float, float] = (0.5, 2.0),
    peak: tuple[float, float] = (0.75, 1.0),
    binary: float = 0.1,
) -> torch.Tensor:
    """How the ink looks: a fraction ``p`` of the images gets ``peak * x ** gamma``
    (gamma log-uniform in ``gamma``: below 1 a soft, bolder edge, above 1 a crisp,
    thinner one; ``peak`` < 1 is faint ink), and a fraction ``binary`` is then
    thresholded at 0.5 (a binary scan or an aliased drawing)."""
    n, dev = x.shape[0], x.device
    picked = _chosen(n, p, gen, dev).view(n, 1, 1, 1)
    g = _uniform(n, math.log(gamma[0]), math.log(gamma[1]), gen, dev).exp().view(n, 1, 1, 1)
    c = _uniform(n, *peak, gen, dev).view(n, 1, 1, 1)
    binarised = _chosen(n, binary, gen, dev).view(n, 1, 1, 1)
    out = torch.where(picked, c * x.clamp(min=0) ** g, x)
    return torch.where(binarised, (out > 0.5).to(x.dtype), out)


def blur(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.3,
    sigma: tuple[float, float] = (0.4, 1.0),
) -> torch.Tensor:
    """Soft sources (an upscaled small image, a photo out of focus): a fraction ``p``
    of the images gets a Gaussian blur of ``sigma`` pixels, its brightest pixel kept."""
    n, _, h, w = x.shape
    dev = x.device
    picked = _chosen(n, p, gen, dev)
    s = _uniform(n, *sigma, gen, dev).view(n, 1)
    r = max(1, math.ceil(3 * sigma[1]))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=dev)
    k = torch.exp(-(t**2) / (2 * s**2))
    k = k / k.sum(1, keepdim=True)  # (N, 2r + 1): one kernel per image
    # the batch as channels, one group each: a separable blur with per-image kernels
    y = x.reshape(1, n, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0)), k.view(n, 1, 1, -1), groups=n)
    y = F.conv2d(F.pad(y, (0, 0, r, r)), k.view(n, 1, -1, 1), groups=n).reshape(x.shape)
    top_in, top_out = x.amax((1, 2, 3), keepdim=True), y.amax((1, 2, 3), keepdim=True)
    y = (y * top_in / top_out.clamp(min=1e-6)).clamp(0, 1)
    return torch.where(picked.view(n, 1, 1, 1), y, x)


def lowres(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.3,
    side: tuple[int, int] = (8, 16),
) -> torch.Tensor:
    """Coarse sources enlarged: a fraction ``p`` of the images is averaged down to
    ``s x s`` pixels (``s`` a whole number in ``side``; at 8 MNIST's 20 px box spans
    under 6 pixels, as a UCI 8x8 scan's digit does) and enlarged back bilinearly, its
    brightest pixel kept. Draws picked, then sizes."""
    n, _, h, w = x.shape
    picked = _chosen(n, p, gen, x.device)
    sizes = torch.randint(side[0], side[1] + 1, (n,), generator=gen).to(x.device)
    out = x.clone()
    for s in torch.unique(sizes[picked]).tolist():
        i = torch.nonzero(picked & (sizes == s)).flatten()
        small = F.interpolate(x[i], size=(s, s), mode="area")  # (n_s, 1, s, s)
        y = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        top_in, top_out = x[i].amax((1, 2, 3), keepdim=True), y.amax((1, 2, 3), keepdim=True)
        out[i] = (y * top_in / top_out.clamp(min=1e-6)).clamp(0, 1)
    return out


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
    "affine2": random_affine2,
    "blur": blur,
    "elastic": elastic,
    "ink": ink,
    "lowres": lowres,
    "thickness": thickness,
}


def make_augment(spec: str):
    """``"none"``, one name of ``AUGMENTATIONS`` or a ``+`` chain applied left to right,
    such as ``"affine2+thickness+ink"``."""
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
