"""Temperature scaling (Guo et al. 2017): one number that makes probabilities honest.

A calibrated model's logits are divided by its temperature ``T`` before anyone sees
them: ``T > 1`` softens over-confident probabilities, ``T < 1`` sharpens
under-confident ones (label smoothing leaves a model under-confident). The
prediction never changes, only how sure it says it is. ``T`` is fitted on held-out
images by minimising the negative log-likelihood, stored in ``model.meta``
(so in every checkpoint), and applied by a forward hook, so that everything that
runs the model (evaluate, predict, serve, an exported ONNX graph) uses it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import MnistlabError

if TYPE_CHECKING:  # torch only where a temperature is fitted: checking one needs none
    import torch
    from torch import nn

__all__ = ["check_temperature", "fit_temperature", "set_temperature"]

# A temperature outside these is a broken model, never a calibrated one: 1e-300 turns
# the logits into infinities and the probabilities into NaN, 1e300 makes every class
# equally likely. Fitting clamps to them; loading refuses anything else.
T_MIN, T_MAX = 1e-2, 1e2


def check_temperature(temperature, what: str = "model.temperature") -> float:
    """``temperature`` as a float, or a ``MnistlabError`` when it is not a finite
    number from ``T_MIN`` to ``T_MAX``."""
    ok = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if not (ok and math.isfinite(temperature) and T_MIN <= temperature <= T_MAX):
        raise MnistlabError(
            f"{what} must be a number from {T_MIN:g} to {T_MAX:g}, got {temperature!r}"
        )
    return float(temperature)


def _divide_by_temperature(module: nn.Module, args, logits: torch.Tensor) -> torch.Tensor:
    return logits / module.meta.temperature


def set_temperature(model: nn.Module, temperature: float) -> nn.Module:
    """Record ``temperature`` in ``model.meta`` and divide the model's logits by it;
    a ``MnistlabError`` for one out of range (``check_temperature``)."""
    model.meta.temperature = check_temperature(temperature)
    hooked = _divide_by_temperature in model._forward_hooks.values()
    if temperature != 1.0 and not hooked:
        model.register_forward_hook(_divide_by_temperature)
    return model


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The ``T`` that minimises the cross-entropy of ``softmax(logits / T)`` on ``labels``.

    ``logits``: ``(N, C)``, uncalibrated (at T = 1). A one-parameter convex problem
    in ``log T``, solved in float64 by L-BFGS.
    """
    import torch
    import torch.nn.functional as F

    z, y = logits.detach().double().cpu(), labels.detach().long().cpu()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(nll)
    if not math.isfinite(log_t.item()):  # NaN or infinite logits: nothing to fit
        raise MnistlabError(
            "cannot fit a temperature: the model's logits are NaN or infinite; train it again"
        )
    t = math.exp(min(log_t.item(), 700.0))  # exp overflows past 709
    return min(max(t, T_MIN), T_MAX)
