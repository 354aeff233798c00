"""The reject option: how digit-like an image is, and where "not a digit" begins.

Every answer carries a *digit score* in [0, 1], higher for more digit-like images:
the largest of the model's calibrated probabilities (the maximum softmax probability
of Hendrycks & Gimpel, 2017). A model trained with outlier exposure
(``train/outliers.py``) spreads its probabilities evenly over an image that is no
digit, so its score falls towards 1/10 there, while a digit keeps its score near 1.
The threshold below which an image is "not a digit" is chosen on validation data
(``analysis/calibrate.py``) and stored in ``model.meta.reject_threshold``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["digit_scores", "fit_threshold", "is_digit"]


def digit_scores(probs: np.ndarray) -> np.ndarray:
    """``(N,)`` digit scores for calibrated probabilities ``(N, C)``."""
    return np.asarray(probs).max(axis=1)


def is_digit(scores: np.ndarray, threshold: float | None) -> np.ndarray:
    """``(N,)`` booleans: at or above ``threshold`` (every image when it is None)."""
    scores = np.asarray(scores)
    if threshold is None:
        return np.ones(scores.shape, dtype=bool)
    return scores >= threshold


# At most this share of the validation digits may fall below the threshold (MNIST
# test's goal is 0.3%, people's own digits 1%: they score lower than MNIST's)
MAX_DIGITS_REJECTED = 0.002
# ... and below that bound it sits as low as it can while catching at most this much
# less of the validation outliers: fewer real digits rejected for the same catch
CATCH_GIVEN_UP = 0.01


def fit_threshold(digit: np.ndarray, outlier: np.ndarray) -> float:
    """The reject threshold for validation digits' and validation outliers' digit
    scores: the highest that rejects at most ``MAX_DIGITS_REJECTED`` of the digits,
    then lowered while the outliers it catches fall by at most ``CATCH_GIVEN_UP``."""
    digit, outlier = np.sort(np.asarray(digit)), np.sort(np.asarray(outlier))
    # the k lowest digits may be rejected: the threshold sits at the (k+1)-th
    top = float(digit[int(MAX_DIGITS_REJECTED * len(digit))])
    caught = np.searchsorted(outlier, top, side="left")  # outliers strictly below `top`
    keep = max(0, int(np.ceil(caught - CATCH_GIVEN_UP * len(outlier))))
    # the lowest threshold that still has `keep` outliers strictly below it
    low = float(np.nextafter(outlier[keep - 1], np.inf)) if keep else float(digit[0])
    return min(top, low)
