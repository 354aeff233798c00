"""Batch augmentations: pure functions of ``(x, generator)`` on ``(N, 1, 28, 28)`` tensors.

They run on the device the batch is on, sample all their randomness from the
given generator (so a seed fixes them), and expect pixels in [0, 1] with a black
(zero) background, which is what fills the borders.

``affine`` and ``elastic`` are the classic MNIST ones. The others model how people
write and how their digits reach us: ``affine2`` adds slant and stretched or narrow
digits (x and y scaled apart), ``thickness`` thin pens and thick markers, ``ink``
the profile of a stroke's edge (gamma, faint ink, binary scans), ``blur`` soft
sources and ``lowres`` coarse ones (an 8x8 or 16x16 scan, a thumbnail) enlarged.
``flag1`` is the one that needs the labels (``fn(x, gen, labels)``): it gives some
MNIST 1s the long flag and the foot that many people, in Europe above all, write.
``hflip`` and ``shift`` are for pictures of things rather than of writing
(Fashion-MNIST): a mirrored shirt is still a shirt, a mirrored 2 is no digit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .geometry import _chosen, _uniform, elastic, hflip, random_affine, random_affine2, shift

__all__ = [
    "AUGMENTATIONS",
    "blur",
    "elastic",
    "flag1",
    "hflip",
    "ink",
    "lowres",
    "make_augment",
    "random_affine",
    "random_affine2",
    "shift",
    "thickness",
]


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


def _segments(shape, a: torch.Tensor, b: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) anti-aliased lines from ``a`` to ``b`` ((N, 2) as x, y in pixels),
    ``width`` (N,) pixels wide: full ink within width/2 of the segment, fading over
    one pixel."""
    n, _, h, w = shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=a.dtype, device=a.device),
        torch.arange(w, dtype=a.dtype, device=a.device),
        indexing="ij",
    )
    p = torch.stack([xs, ys], -1).view(1, h, w, 2)  # pixel centres
    ab = (b - a).view(n, 1, 1, 2)
    t = ((p - a.view(n, 1, 1, 2)) * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-6)
    near = a.view(n, 1, 1, 2) + t.clamp(0, 1).unsqueeze(-1) * ab  # (N, H, W, 2)
    d = (p - near).norm(dim=-1)  # (N, H, W): distance to the segment
    return (width.view(n, 1, 1) / 2 + 0.5 - d).clamp(0, 1).unsqueeze(1)


def flag1(
    x: torch.Tensor,
    gen: torch.Generator,
    labels: torch.Tensor | None = None,
    one: int = 1,
    p: float = 0.5,
    length: tuple[float, float] = (0.2, 0.45),
    angle: tuple[float, float] = (20.0, 55.0),
    foot: float = 0.3,
) -> torch.Tensor:
    """The 1 as many people write it: a fraction ``p`` of the images labelled ``one``
    gets a flag, a stroke from the top of its ink down to the left (``length`` of the
    digit's height, ``angle`` degrees below the horizontal), and a fraction ``foot``
    of those a foot, a bar across the bottom (0.3-0.6 of the height). Strokes as wide
    as the digit's own (its ink over its height). Without labels, the identity.
    Draws picked, length, angle, foot, foot length in that order, for every image."""
    n, _, h, w = x.shape
    dev = x.device
    picked = _chosen(n, p, gen, dev)
    flag_len = _uniform(n, *length, gen, dev)
    theta = _uniform(n, *angle, gen, dev) * (math.pi / 180)
    footed = _chosen(n, foot, gen, dev)
    foot_len = _uniform(n, 0.3, 0.6, gen, dev)
    if labels is None:
        return x
    i = torch.nonzero(picked & (labels.to(dev) == one)).flatten()
    inked = x[i, 0] > 0.3  # (k, H, W)
    i = i[inked.flatten(1).any(1)]  # an image without ink has no top to start from
    if not len(i):
        return x
    xi = x[i, 0]
    rows = (xi > 0.3).any(2)  # (k, H)
    r = torch.arange(h, device=dev)
    top = torch.where(rows, r, h).amin(1)  # first inked row
    bottom = torch.where(rows, r, -1).amax(1)
    height = (bottom - top + 1).to(x.dtype)
    cols = torch.arange(w, dtype=x.dtype, device=dev)

    def centre(row: torch.Tensor) -> torch.Tensor:  # ink-weighted column of 2 rows from row
        band = ((r.view(1, h) - row.view(-1, 1)).abs() <= 1).to(x.dtype)  # (k, H)
        mass = (xi * band.unsqueeze(2)).sum(1)  # (k, W)
        return (mass * cols).sum(1) / mass.sum(1).clamp(min=1e-6)

    width = (xi.sum((1, 2)) / height).clamp(1.5, 4.0)  # a 1 is mostly one stroke
    a = torch.stack([centre(top), top.to(x.dtype)], 1)
    k = flag_len[i] * height
    b = a + torch.stack([-k * torch.cos(theta[i]), k * torch.sin(theta[i])], 1)
    ink = _segments((len(i), 1, h, w), a, b, width)
    half = (foot_len[i] * height / 2).view(-1, 1)
    base = torch.stack([centre(bottom), bottom.to(x.dtype)], 1)
    left, right = (
        base - half * torch.tensor([1.0, 0.0], device=dev),
        base + half * torch.tensor([1.0, 0.0], device=dev),
    )
    feet = _segments((len(i), 1, h, w), left, right, width)
    ink = torch.where(footed[i].view(-1, 1, 1, 1), torch.maximum(ink, feet), ink)
    out = x.clone()
    out[i] = torch.maximum(x[i], ink)
    return out


AUGMENTATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "affine": random_affine,
    "affine2": random_affine2,
    "blur": blur,
    "elastic": elastic,
    "flag1": flag1,
    "hflip": hflip,
    "ink": ink,
    "lowres": lowres,
    "shift": shift,
    "thickness": thickness,
}


LABELLED = {flag1}  # these take the batch's labels too


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

    def augment(
        x: torch.Tensor, gen: torch.Generator, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        for fn in fns:
            x = fn(x, gen, labels) if fn in LABELLED else fn(x, gen)
        return x

    return augment
