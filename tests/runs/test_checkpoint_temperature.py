"""A checkpoint's temperature must be a sane one: from 0.01 to 100. An edited best.json
with 1e-300 used to print "0 (nan%)" and make the API answer 500; with 1e300, every
class equally likely. They are refused at load, in one line, by every command and by
the server; and fitting one never produces anything outside the range."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mnistlab import load_checkpoint
from mnistlab.cli import main
from mnistlab.errors import MnistlabError
from mnistlab.models import fit_temperature
from mnistlab.runs.checkpoint import CheckpointError, save_checkpoint
from mnistlab.serve.predict import load_predictor
from tests.support.cli import error_from, run_main
from tests.support.processes import cli_env, free_port
from tests.support.references import ensemble_of, two_members


def _edited(trained_run, tmp_path, temperature) -> object:
    """A copy of ``trained_run``'s best checkpoint with its temperature set."""
    run = tmp_path / f"t{temperature}"
    run.mkdir()
    shutil.copy(trained_run / "best.safetensors", run)
    doc = json.loads((trained_run / "best.json").read_text())
    doc["model"]["temperature"] = temperature
    (run / "best.json").write_text(json.dumps(doc))
    return run


def _mnistlab(mnist_dir, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnistlab", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(mnist_dir),
    )


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1e-300, 1e300])
def test_predict_refuses_an_insane_temperature_in_one_line(trained_run, tmp_path, temperature):
    run = _edited(trained_run, tmp_path, temperature)
    one = np.full((28, 28), 255, np.uint8)
    one[4:24, 13:16] = 0  # a drawn 1
    Image.fromarray(one).save(tmp_path / "one.png")
    proc = run_main("predict", run, tmp_path / "one.png")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(lines) == 1, proc.stderr
    assert "temperature must be a number from 0.01 to 100" in lines[0]
    assert repr(temperature) in lines[0] and "best.json" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])  # 2: checked in a child, before any worker
def test_serve_refuses_an_insane_temperature_before_serving(
    trained_run, tmp_path, mnist_dir, workers
):
    run = _edited(trained_run, tmp_path, 1e-300)
    port = str(free_port())
    proc = _mnistlab(mnist_dir, "serve", str(run), "--port", port, "--workers", workers)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "serving" not in proc.stdout
    assert len(lines) == 1 and "temperature must be a number from 0.01 to 100" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "temperature,ok", [(0.0099, False), (0.01, True), (100.0, True), (100.01, False)]
)
def test_the_range_is_0_01_to_100_for_every_backend(trained_run, tmp_path, temperature, ok):
    run = _edited(trained_run, tmp_path, temperature)
    for backend in ("torch", "onnx"):
        if ok:
            probs = load_predictor(run, backend=backend).probs(np.zeros((1, 28, 28), np.uint8))
            assert np.isfinite(probs).all() and probs.shape == (1, 10)
        else:
            with pytest.raises(CheckpointError, match=r"temperature must be a number from 0\.01"):
                load_predictor(run, backend=backend)


def test_fitting_stays_in_range_and_refuses_nan_logits():
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (500,))
    confident_right = torch.nn.functional.one_hot(labels, 10).float() * 1e6
    t = fit_temperature(confident_right, labels)  # would fit a temperature near 0
    assert 0.01 <= t <= 100
    logits = torch.randn(500, 10)
    logits[3, 4] = math.nan
    with pytest.raises(MnistlabError, match="NaN or infinite"):
        fit_temperature(logits, labels)


@pytest.mark.parametrize("where", ["model", "member"])
@pytest.mark.parametrize("value", [-1, "x", 0, None])
def test_an_edited_temperature_is_refused_on_load(saved_runs, tmp_path, capsys, where, value):
    runs, png = saved_runs
    run = runs[0]
    if where == "member":
        a, b = two_members()
        save_checkpoint(run / "best", ensemble_of(a, b), {})
    doc = json.loads((run / "best.json").read_text())
    target = doc["model"] if where == "model" else doc["model"]["kwargs"]["members"][1]
    target["temperature"] = value
    (run / "best.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="temperature must be a finite number above 0"):
        load_checkpoint(run)
    assert main(["predict", str(run), str(png)]) == 1
    error_from(capsys, "temperature must be a finite number above 0")
