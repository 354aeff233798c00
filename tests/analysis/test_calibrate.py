"""Calibration from the command line: ``train`` prints and stores its temperature, and
``mnistlab calibrate`` fits one on the validation split."""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mnistlab import load_checkpoint
from mnistlab.cli import main
from mnistlab.models import create_model
from tests.support.references import (
    MNIST_MEAN,
    MNIST_STD,
    ece,
    nll,
)


@pytest.mark.slow
def test_train_prints_and_stores_its_calibration(cnn_cli_run):
    run, stdout = cnn_cli_run
    doc = json.loads((run / "best.json").read_text())
    t = doc["model"]["temperature"]
    m = re.search(r"calibrated: temperature (\d+\.\d{3})", stdout)
    assert m, stdout
    assert float(m[1]) == pytest.approx(t, abs=5e-4)
    assert doc["calibration"]["temperature"] == t
    assert doc["calibration"]["fitted_on"] == "the validation split (5,000 images)"
    # label smoothing 0.1 leaves the model under-confident: the fit sharpens it
    assert 0.1 < t < 1.0


@pytest.mark.slow
def test_calibrate_cli_fits_on_the_validation_split(trained_run, mnist, tmp_path, capsys):
    optimize = pytest.importorskip("scipy.optimize")
    run = tmp_path / "run"  # a copy: the shared run's checkpoints must not change
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("eval", "inspect", "*.png"))
    weights = (run / "best.safetensors").read_bytes()
    stored_before = json.loads((run / "best.json").read_text())["model"]["temperature"]

    assert main(["calibrate", str(run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"calibrated: temperature (\d+\.\d{3}), fitted on the validation split", out)
    assert m, out
    doc = json.loads((run / "best.json").read_text())
    t, record = doc["model"]["temperature"], doc["calibration"]
    assert float(m[1]) == pytest.approx(t, abs=5e-4) and record["temperature"] == t
    assert (run / "best.safetensors").read_bytes() == weights  # weights untouched
    # fitted again from the raw logits, not on top of the stored temperature
    assert t == pytest.approx(stored_before, rel=1e-4)

    # the same fit, by hand: raw logits on the run's validation split (seed 0, 5,000)
    model = create_model("cnn")
    model.load_state_dict(load_file(str(run / "best.safetensors")))
    model.eval()
    with torch.no_grad():
        zv = model((mnist.val[0].float() / 255 - MNIST_MEAN) / MNIST_STD).double().numpy()
        zt = model((mnist.test[0].float() / 255 - MNIST_MEAN) / MNIST_STD).double().numpy()
    yv, yt = mnist.val[1].numpy(), mnist.test[1].numpy()
    best = optimize.minimize_scalar(
        lambda lt: nll(zv, yv, math.exp(lt)), bounds=(-4.6, 4.6), method="bounded"
    )
    assert t == pytest.approx(math.exp(best.x), rel=1e-3)

    def probs(z, temp):
        e = np.exp(z / temp - (z / temp).max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    assert record["ece_before"] == pytest.approx(ece(probs(zv, 1.0), yv), abs=1e-5)
    assert record["ece_after"] == pytest.approx(ece(probs(zv, t), yv), abs=1e-5)
    assert record["test_ece_before"] == pytest.approx(ece(probs(zt, 1.0), yt), abs=1e-5)
    assert record["test_ece_after"] == pytest.approx(ece(probs(zt, t), yt), abs=1e-5)
    assert record["test_ece_after"] < record["test_ece_before"]  # it helps on unseen images
    # and the loaded model uses it
    loaded, _ = load_checkpoint(run)
    with torch.no_grad():
        z = loaded((mnist.test[0][:100].float() / 255 - MNIST_MEAN) / MNIST_STD).double().numpy()
    assert np.abs(z - zt[:100] / t).max() < 1e-4
