"""Test-time augmentation (TTA): classify a few shifted and rotated copies, average.

``with_tta(model)`` wraps any model (an ensemble too): each image is seen as it is,
moved by one pixel left, right, up and down, and turned 10 degrees either way;
the seven views' probabilities are averaged. The views were fixed before any
measurement (they are the small moves a centred, upright digit still makes), not
chosen on a test set. It costs seven forward passes per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VIEWS", "TestTimeAugmentation", "with_tta"]

# (shift right in pixels, shift down in pixels, rotation in degrees, anticlockwise)
VIEWS = ((0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 10), (0, 0, -10))


def _grid(dx: float, dy: float, degrees: float, size: int = 28) -> torch.Tensor:
    """The ``grid_sample`` grid ``(1, size, size, 2)`` that moves an image by (dx, dy)
    pixels and turns it by ``degrees`` about its centre."""
    a = math.radians(degrees)
    # output pixel -> where to read in the input, in [-1, 1] coordinates: the inverse move
    theta = torch.tensor(
        [
            [math.cos(a), -math.sin(a), -2 * dx / size],
            [math.sin(a), math.cos(a), -2 * dy / size],
        ],
        dtype=torch.float32,
    )
    return F.affine_grid(theta[None], [1, 1, size, size], align_corners=False)


class TestTimeAugmentation(nn.Module):
    """``model`` averaged over ``VIEWS``; returns the log of the mean probability."""

    def __init__(self, model: nn.Module, views=VIEWS):
        super().__init__()
        self.model = model
        self.meta = model.meta  # it classifies what the model classifies
        grids = torch.cat([_grid(*v) for v in views])  # (V, 28, 28, 2)
        self.register_buffer("grids", grids, persistent=False)

    def view_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits ``(V, N, C)`` for each view of ``x`` (normalised ``(N, 1,
        28, 28)``), after its temperature."""
        m = self.meta
        raw = x * m.std + m.mean  # moved in pixel values, so the new border is background (0)
        n = x.shape[0]
        views = [
            F.grid_sample(raw, g.expand(n, -1, -1, -1), align_corners=False) for g in self.grids
        ]
        batch = (torch.cat(views) - m.mean) / m.std  # (V * N, 1, 28, 28)
        return self.model(batch).float().reshape(len(self.grids), n, -1)  # (V, N, C)

    @staticmethod
    def average(view_logits: torch.Tensor) -> torch.Tensor:
        """The log of the mean probability over the views: ``(V, N, C)`` -> ``(N, C)``."""
        log_probs = F.log_softmax(view_logits, dim=2)
        return torch.logsumexp(log_probs, dim=0) - math.log(view_logits.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 1, 28, 28), normalised
        return self.average(self.view_logits(x))


def with_tta(model: nn.Module) -> TestTimeAugmentation:
    device = next(model.parameters()).device
    return TestTimeAugmentation(model).to(device).eval()
