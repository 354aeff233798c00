"""An ensemble as a model: the mean of its members' probabilities.

``mnistlab ensemble RUN... -o DIR`` saves one (``analysis/ensemble.py``); it loads
like any checkpoint, because ``create_model("ensemble", members=[...])`` rebuilds it
from the members' metadata (each a ``ModelMeta`` dict: name, kwargs, normalisation,
temperature). The members may differ in architecture and normalisation: the input
comes normalised with the ensemble's mean/std, and each member gets it re-normalised
with its own. The output is the log of the mean probability, so that
``softmax(output)`` is that mean and every tool that reads logits reads it right.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MnistlabError

__all__ = ["Ensemble", "build_ensemble"]

MAX_MEMBERS = 64


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


def build_ensemble(
    class_names: tuple[str, ...], mean: float, std: float, members: list | None = None
) -> Ensemble:
    """The ensemble of ``members`` (``ModelMeta`` dicts), each rebuilt untrained."""
    from ._registry import ENSEMBLE, ModelMeta, create_model

    if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
        raise MnistlabError(f"an ensemble needs a list of 1 to {MAX_MEMBERS} members")
    built = []
    for i, d in enumerate(members):
        try:
            meta = ModelMeta.from_dict(d)
        except MnistlabError as e:
            raise MnistlabError(f"ensemble member {i}: {e}") from None
        if meta.name == ENSEMBLE:
            raise MnistlabError(f"ensemble member {i} is an ensemble; give its members instead")
        if tuple(meta.class_names) != tuple(class_names):
            raise MnistlabError(
                f"ensemble member {i} ({meta.name}) has classes {list(meta.class_names)}, "
                f"not {list(class_names)}: members must classify the same classes"
            )
        built.append(
            create_model(
                meta.name,
                mean=meta.mean,
                std=meta.std,
                class_names=meta.class_names,
                temperature=meta.temperature,
                **meta.kwargs,
            )
        )
    model = Ensemble(built, mean, std)
    model.meta = ModelMeta(
        name=ENSEMBLE,
        kwargs={"members": [m.meta.to_dict() for m in built]},
        mean=mean,
        std=std,
        class_names=tuple(class_names),
        source=f"mnistlab ensemble: the mean of {len(built)} members' probabilities",
    )
    return model
