"""``iter_predictions`` (``serve/predict.py``): files in, one answer each, streamed in
bounded batches and in input order."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mnistlab.serve.predict import iter_predictions, load_predictor
from mnistlab.serve.preprocess import load_digit
from tests.support.images import stroke_png


def test_predict_streams_in_bounded_batches_in_input_order(untrained_run, tmp_path):
    files = []
    for i in range(11):
        if i in (2, 7):
            (tmp_path / f"{i:02d}.png").write_bytes(b"broken")
        elif i == 9:
            Image.new("L", (40, 40), 255).save(tmp_path / f"{i:02d}.png")  # blank
        else:
            stroke_png(tmp_path / f"{i:02d}.png", seed=i)
        files.append(str(tmp_path / f"{i:02d}.png"))
    predictor = load_predictor(untrained_run)
    inner, sizes = predictor.run, []

    def counting(x):
        sizes.append(len(x))
        return inner(x)

    predictor.run = counting
    stream = iter_predictions(predictor, files, workers=2, batch=4)
    first = next(stream)
    assert first.source == files[0] and sizes == [3]  # one batch of 4 (one bad) so far
    results = [first, *stream]
    assert [r.source for r in results] == files
    assert [i for i, r in enumerate(results) if r.error] == [2, 7, 9]
    assert sizes == [3, 3, 2]  # files 0-3, 4-7, 8-10, without the bad ones
    whole = load_predictor(untrained_run).probs(np.stack([load_digit(f) for f in files[3:6]]))
    for r, p in zip(results[3:6], whole, strict=True):
        assert r.confidence == pytest.approx(p.max(), abs=1e-5)
