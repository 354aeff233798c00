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
    """The ``T`` that minimises the cross-entropy of ``softmax(logits / T)`` on ``labels``,
    clamped to ``T_MIN .. T_MAX``.

    ``logits``: ``(N, C)``, uncalibrated (at T = 1). In ``b = 1 / T`` the mean
    cross-entropy is convex, with derivative ``mean(E_p[z] - z_y)`` and second derivative
    ``mean(Var_p[z])`` (``p = softmax(b z)``), so Newton's method, kept inside a bracket
    that halves when a step would leave it, finds it in float64 in a few steps. (Not
    torch's L-BFGS: any torch optimiser loads ``torch._dynamo``, 2 s of a command's start.)
    """
    import torch

    z = logits.detach().double().cpu()
    if not bool(torch.isfinite(z).all()):  # NaN or infinite logits: nothing to fit
        raise MnistlabError(
            "cannot fit a temperature: the model's logits are NaN or infinite; train it again"
        )
    zy = z.gather(1, labels.detach().long().cpu().view(-1, 1)).squeeze(1)  # (N,)

    def slopes(b: float) -> tuple[float, float]:
        p = torch.softmax(b * z, 1)  # (N, C)
        mean = (p * z).sum(1)  # E_p[z], (N,)
        var = (p * z * z).sum(1) - mean * mean
        return float((mean - zy).mean()), float(var.clamp_min(0).mean())

    lo, hi = 1 / T_MAX, 1 / T_MIN
    at_lo, at_hi = slopes(lo)[0], slopes(hi)[0]
    if at_lo >= 0 and at_hi <= 0:  # flat (all logits equal): any T; keep them as they are
        return 1.0
    if at_hi <= 0:  # still falling at the sharpest temperature allowed
        return T_MIN
    if at_lo >= 0:  # already rising at the softest
        return T_MAX
    b = 1.0
    for _ in range(100):
        d1, d2 = slopes(b)
        lo, hi = (lo, b) if d1 > 0 else (b, hi)
        newton = b - d1 / d2 if d2 > 0 else math.nan
        b, last = (newton if lo < newton < hi else (lo + hi) / 2), b
        if abs(b - last) <= 1e-10 * b:
            break
    return min(max(1 / b, T_MIN), T_MAX)
