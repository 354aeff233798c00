"""How well ``read_number`` reads formatted numbers: rows from ``data/number_rows.py``.

``score_rows(predictor, 50, x, y)`` writes ``n_per_format`` rows of each of
``number_rows.FORMATS`` with the digits ``x`` (labels ``y``; pass MNIST's test split,
never the training digits) and reads them back. Per format: ``exact``, the share of rows
whose ``text`` is right as a whole; ``layout``, the share whose separators and spaces are
right (the text with every digit masked); ``digits``, the share of digits right, by
position, in rows where as many digits were read as were written; ``ceiling``, the
share of rows whose every digit the model reads right as MNIST gives it (28x28, no
row): what the classifier alone allows, whatever the reading. The digits stand apart
(no two touch): this measures separators and spaces, not cutting.
"""

from __future__ import annotations

import numpy as np

from ..data.number_rows import FORMATS, by_label, make_row, make_text, masked
from .numbers import read_number
from .preprocess import PreprocessError

__all__ = ["score_rows"]


def score_rows(
    predictor,
    n_per_format: int,
    digits: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    formats: dict[str, str] | None = None,
) -> dict[str, dict[str, float]]:
    """``{format: {"rows", "exact", "layout", "digits", "ceiling"}}`` over
    ``n_per_format`` rows of each format (``FORMATS`` unless given), drawn with ``seed``."""
    pool = by_label(digits, labels)
    names = list(predictor.class_names)
    # (N,) per label: does the model read each pool digit right as MNIST gives it
    alone = {k: predictor.probs(v).argmax(1) == names.index(k) for k, v in pool.items()}
    rng = np.random.default_rng(seed)
    out = {}
    for name, pattern in (formats or FORMATS).items():
        exact = layout = right = total = ceiling = 0
        for _ in range(n_per_format):
            picked: list[tuple[str, int]] = []
            img, truth = make_row(make_text(pattern, rng), pool, rng, picked=picked)
            ceiling += all(alone[k][i] for k, i in picked)
            try:
                result = read_number(predictor, img, name)
                text, number = result.text, result.number
            except PreprocessError:  # counted as a row read wrong
                text = number = ""
            exact += text == truth
            layout += masked(text) == masked(truth)
            want = "".join(c for c in truth if c.isdigit())
            total += len(want)
            if len(number) == len(want):
                right += sum(a == b for a, b in zip(number, want, strict=True))
        n = max(n_per_format, 1)
        out[name] = {
            "rows": n_per_format,
            "exact": exact / n,
            "layout": layout / n,
            "digits": right / max(total, 1),
            "ceiling": ceiling / n,
        }
    return out
