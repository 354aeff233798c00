"""Classification metrics from predictions: per-class precision/recall, calibration.

Plain functions on tensors so they can be checked against hand-computed values.
"""

from __future__ import annotations

import torch

__all__ = ["calibration", "confident_mistakes", "confusion_matrix", "per_class"]


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``cm[i, j]`` = number of images of true class i predicted as j."""
    flat = labels.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class(cm: torch.Tensor) -> list[dict]:
    """Precision, recall and F1 per class from a confusion matrix (0 where undefined)."""
    cm = cm.double()
    tp = cm.diag()
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(
        denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp)
    )
    return [
        {
            "precision": precision[i].item(),
            "recall": recall[i].item(),
            "f1": f1[i].item(),
            "support": int(actual[i]),
        }
        for i in range(len(tp))
    ]


def calibration(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> dict:
    """Expected calibration error over equal-width confidence bins (Guo et al. 2017).

    ECE = sum over bins of (bin size / N) * |accuracy(bin) - mean confidence(bin)|.
    Returns the ECE and, per bin, its range, count, accuracy and mean confidence
    (the data of a reliability diagram).
    """
    conf, pred = probs.max(1)
    correct = (pred == labels).double()
    conf = conf.double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    # bin i holds confidences in (edges[i], edges[i+1]]; confidence 0 goes to bin 0
    idx = (torch.bucketize(conf, edges, right=False) - 1).clamp(0, bins - 1)
    n = len(labels)
    ece, table = 0.0, []
    for i in range(bins):
        mask = idx == i
        count = int(mask.sum())
        acc = correct[mask].mean().item() if count else 0.0
        mean_conf = conf[mask].mean().item() if count else 0.0
        ece += count / n * abs(acc - mean_conf)
        table.append(
            {
                "low": edges[i].item(),
                "high": edges[i + 1].item(),
                "count": count,
                "accuracy": acc,
                "confidence": mean_conf,
            }
        )
    return {"ece": ece, "bins": table}


def confident_mistakes(probs: torch.Tensor, labels: torch.Tensor, k: int = 24) -> torch.Tensor:
    """Indices of the ``k`` wrong predictions made with the highest confidence."""
    conf, pred = probs.max(1)
    wrong = (pred != labels).nonzero().flatten()
    order = conf[wrong].argsort(descending=True)
    return wrong[order[:k]]
