"""An ensemble as a model: the mean of its members' probabilities.

``mnistlab ensemble RUN... -o DIR`` saves one (``analysis/ensemble.py``); it loads
like any checkpoint, because ``create_model("ensemble", members=[...])`` rebuilds it
from the members' metadata (each a ``ModelMeta`` dict: name, kwargs, normalisation,
temperature; ``models/_registry.py`` builds the members, this module only combines
them). The members may differ in architecture and normalisation: the input
comes normalised with the ensemble's mean/std, and each member gets it re-normalised
with its own. The output is the log of the mean probability, so that
``softmax(output)`` is that mean and every tool that reads logits reads it right.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Ensemble"]


class Ensemble(nn.Module):
    """Members' probabilities averaged; returns their log ``(N, C)``."""

    def __init__(self, members: list[nn.Module], mean: float, std: float):
        super().__init__()
        self.members = nn.ModuleList(members)  # tensors: members.0.conv1.weight ...
        # member i sees (raw - mean_i) / std_i = x * scale_i + shift_i, raw = x * std + mean
        self.renormalise = [(std / m.meta.std, (mean - m.meta.mean) / m.meta.std) for m in members]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 1, 28, 28)
        log_probs = []
        for member, (scale, shift) in zip(self.members, self.renormalise, strict=True):
            xi = x if (scale, shift) == (1.0, 0.0) else x * scale + shift
            log_probs.append(F.log_softmax(member(xi).float(), dim=1))  # (N, C)
        stacked = torch.stack(log_probs)  # (K, N, C)
        return torch.logsumexp(stacked, dim=0) - math.log(len(log_probs))  # log of the mean
