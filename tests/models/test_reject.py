"""A trained model says "not a digit": its threshold is fitted at calibration, travels
with the checkpoint and the ONNX file, and rejects letters and scribbles, not digits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnistlab.data import load_split
from mnistlab.data.outliers import VAL_FONTS, render_glyph, render_shape, to_mnist_frame
from mnistlab.serve.predict import load_predictor
from tests.support.files import copy_run


@pytest.fixture(scope="module")
def predictor(trained_run):
    return load_predictor(trained_run)


def test_calibration_stores_a_threshold_fitted_on_validation_data(trained_run):
    doc = json.loads((trained_run / "best.json").read_text())
    threshold, record = doc["model"]["reject_threshold"], doc["calibration"]
    assert 0.1 < threshold < 1 and record["reject_threshold"] == threshold
    # at most 0.2% of the 5,000 validation digits fall below it (models/_reject.py)
    assert record["val_digits_rejected"] <= 0.002
    # one epoch of outlier exposure already catches far more than the 16% that the
    # default recipe without outliers catches (docs/trust.md)
    assert record["val_outliers"] == 5000 and record["val_outliers_rejected"] > 0.3


def test_letters_and_scribbles_are_not_digits_and_digits_are(predictor, mnist_dir):
    letters = [to_mnist_frame(render_glyph(c, VAL_FONTS[0])) for c in "AEFHKMNPRTWXYkmnrwx#@&?"]
    rng = np.random.default_rng(7)
    scribbles = [to_mnist_frame(render_shape("scribble", rng)) for _ in range(20)]
    _, odd, _ = predictor.judge(np.stack(letters + scribbles))
    x, _ = load_split("mnist", "test", mnist_dir)
    probs, scores, kept = predictor.judge(x[:2000, 0].numpy())
    assert kept.mean() > 0.99  # 1 epoch, no augmentation: a weaker model than the default
    # the session's model (one epoch, no augmentation) rejects only ~40% of the validation
    # outliers at its threshold (the default recipe: 84%, docs/trust.md), but it ranks
    # them: most letters and scribbles score below all but the lowest 1% of digits
    low = np.quantile(scores, 0.01)
    assert (odd[: len(letters)] < low).mean() > 0.5 and (odd[len(letters) :] < low).mean() > 0.5
    assert np.array_equal(scores, probs.max(1))


def test_the_threshold_travels_into_the_onnx_file(trained_run, tmp_path):
    pytest.importorskip("onnxruntime")
    from mnistlab.runs.checkpoint import load_checkpoint
    from mnistlab.serve.export import export_onnx

    model, _ = load_checkpoint(trained_run, "cpu")
    path = export_onnx(model, tmp_path / "model.onnx")
    onnx_predictor = load_predictor(path)
    assert onnx_predictor.reject_threshold == model.meta.reject_threshold is not None


def test_a_broken_threshold_in_a_checkpoint_is_one_clear_error(trained_run, tmp_path):

    from mnistlab.errors import MnistlabError

    run = tmp_path / "run"
    copy_run(trained_run, run)
    doc = json.loads((run / "best.json").read_text())
    doc["model"]["reject_threshold"] = 7
    (run / "best.json").write_text(json.dumps(doc))
    with pytest.raises(MnistlabError, match="reject_threshold must be a number from 0 to 1"):
        load_predictor(run)
