"""References that do not use the code under test: cross-entropy, calibration error,
shifted and rotated views written out by hand, a softmax over views; and small
untrained models and ensembles to check them on."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnistlab.models import Ensemble, create_model

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    """Mean cross-entropy of softmax(z / t) on labels y, in numpy float64."""
    s = z / t
    s = s - s.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(len(y)), y]))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error over equal-width bins (lo, hi], written out in numpy."""
    conf, pred = probs.max(1), probs.argmax(1)
    correct = (pred == labels).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf <= hi)
        if m.any():
            total += m.sum() / len(labels) * abs(correct[m].mean() - conf[m].mean())
    return total


def shifted(raw: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``raw`` (N, 1, H, W) moved dx pixels right and dy down, background (0) let in."""
    out = torch.zeros_like(raw)
    h, w = raw.shape[-2:]
    src = raw[..., max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    out[..., max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)] = src
    return out


def views_by_hand(raw: torch.Tensor) -> list[torch.Tensor]:
    """The 7 TTA views of un-normalised images, made with slicing and scipy's rotate
    (bilinear, about the image centre, zeros outside): the documented VIEWS."""
    from scipy import ndimage

    views = [raw] + [shifted(raw, dx, dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    for degrees in (10, -10):
        turned = ndimage.rotate(
            raw.numpy(), degrees, axes=(3, 2), reshape=False, order=1, mode="constant", cval=0.0
        )
        views.append(torch.from_numpy(turned))
    return views


def tta_probs_by_hand(forward, raw: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Mean softmax over the 7 views; ``forward`` maps normalised images to logits."""
    with torch.no_grad():
        return torch.stack(
            [F.softmax(forward((v - mean) / std).double(), 1) for v in views_by_hand(raw)]
        ).mean(0)


def randomised(model: nn.Module, seed: int, logit_scale: float = 1.0) -> nn.Module:
    """``model`` freshly initialised from ``seed``, BatchNorm statistics drawn too (not
    0 and 1), logits enlarged by ``logit_scale`` so that a temperature visibly changes
    them; in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        last.weight.mul_(logit_scale)
        last.bias.mul_(logit_scale)
    return model.eval()


def ort_session(graph):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    return ort.InferenceSession(graph, providers=["CPUExecutionProvider"])


def two_members():
    a = randomised(create_model("cnn", mean=0.5, std=0.5, temperature=2.0), 3, 20)
    b = randomised(create_model("fast"), 4, 5)
    return a, b


def ensemble_of(a, b) -> Ensemble:
    e = create_model(
        "ensemble", members=[a.meta.to_dict(), b.meta.to_dict()], mean=MNIST_MEAN, std=MNIST_STD
    )
    state = {f"members.{i}.{k}": v for i, m in enumerate((a, b)) for k, v in m.state_dict().items()}
    e.load_state_dict(state)
    return e.eval()
