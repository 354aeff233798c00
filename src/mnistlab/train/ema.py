"""An exponential moving average (EMA) of the weights, evaluated and saved instead of them.

After every optimiser step the average moves a little towards the trained weights:
``avg = decay * avg + (1 - decay) * weights``, over every float tensor of the
state dict (parameters and BatchNorm's running statistics alike). Evaluating the
average instead of the last step smooths out the noise of the last few hundred
steps (An et al. 2020 kept one for their MNIST nets). Early on, when the average
would still hold mostly the random initial weights, the decay is capped at
``(1 + n) / (10 + n)`` after ``n`` updates (as in TensorFlow's
``ExponentialMovingAverage``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["WeightAverage"]

PREFIX = "ema."  # its tensors' names in the resume state


class WeightAverage:
    """The EMA of ``model``'s weights, as a model of its own (``.model``, in eval mode)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s weights (call after each optimiser step)."""
        self.updates += 1
        d = self.current_decay()
        avg, now = self.model.state_dict(), model.state_dict()
        floats = [k for k, v in avg.items() if v.is_floating_point()]
        torch._foreach_lerp_([avg[k] for k in floats], [now[k] for k in floats], 1 - d)
        for k, v in avg.items():  # counters such as num_batches_tracked: the latest
            if not v.is_floating_point():
                v.copy_(now[k])

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors to resume from (with ``updates``, which the caller keeps in JSON)."""
        return {PREFIX + k: v for k, v in self.model.state_dict().items()}

    def restore(self, tensors: dict[str, torch.Tensor], updates: int) -> None:
        mine = {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        self.model.load_state_dict(mine)  # copies into the existing (channels_last) tensors
        self.updates = updates
