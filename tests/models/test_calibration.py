"""Temperature scaling (``models/_calibration.py``): the fitted temperature against scipy's
minimiser, applied to the logits, and kept through a checkpoint and ONNX."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnistlab import load_checkpoint
from mnistlab.models import create_model, fit_temperature, set_temperature
from mnistlab.runs.checkpoint import save_checkpoint
from tests.support.references import (
    nll,
    ort_session,
    randomised,
)


@pytest.mark.parametrize("t_true", [0.5, 2.0])
def test_fit_temperature_recovers_a_known_temperature_and_matches_scipy(t_true):
    optimize = pytest.importorskip("scipy.optimize")
    g = torch.Generator().manual_seed(int(t_true * 10))
    z = torch.randn(20_000, 10, generator=g, dtype=torch.float64) * 3
    y = torch.multinomial(torch.softmax(z / t_true, 1), 1, generator=g).squeeze(1)

    t = fit_temperature(z.float(), y)
    assert t == pytest.approx(t_true, rel=0.05)

    zn, yn = z.float().double().numpy(), y.numpy()
    best = optimize.minimize_scalar(
        lambda log_t: nll(zn, yn, math.exp(log_t)),
        bounds=(math.log(1e-2), math.log(1e2)),
        method="bounded",
        options={"xatol": 1e-9},
    )
    assert t == pytest.approx(math.exp(best.x), rel=1e-3)
    # and it is a minimum: both neighbours cost more
    assert nll(zn, yn, t) <= min(nll(zn, yn, t * 1.01), nll(zn, yn, t / 1.01))


def test_set_temperature_divides_logits_and_keeps_the_prediction():
    torch.manual_seed(0)
    raw_model = randomised(create_model("cnn"), seed=1, logit_scale=20)
    model = randomised(create_model("cnn"), seed=1, logit_scale=20)
    x = torch.randn(64, 1, 28, 28)
    with torch.no_grad():
        raw = raw_model(x)
        set_temperature(model, 2.0)
        hot = model(x)
        set_temperature(model, 4.0)  # replaces 2.0, does not divide twice
        hotter = model(x)
        set_temperature(model, 1.0)
        back = model(x)
    assert model.meta.temperature == 1.0
    assert raw.abs().max() > 1.0  # large enough for T to matter
    assert torch.equal(hot.argmax(1), raw.argmax(1))
    e = torch.exp(raw.double() / 2.0)
    by_hand = e / e.sum(1, keepdim=True)
    assert torch.allclose(F.softmax(hot.double(), 1), by_hand, atol=1e-6)
    assert torch.allclose(hotter, raw / 4.0, atol=1e-5)
    assert torch.allclose(back, raw, atol=1e-6)


def test_temperature_survives_a_checkpoint_round_trip_and_onnx(tmp_path):
    model = randomised(create_model("cnn", temperature=2.5), seed=2, logit_scale=20)
    assert model.meta.temperature == 2.5
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        want = model(x)
        raw = want * 2.5
    save_checkpoint(tmp_path / "best", model, {"dataset": "mnist"})
    doc = json.loads((tmp_path / "best.json").read_text())
    assert doc["model"]["temperature"] == 2.5
    loaded, _ = load_checkpoint(tmp_path / "best.json")
    assert loaded.meta.temperature == 2.5
    with torch.no_grad():
        assert torch.allclose(loaded(x), want, atol=1e-6)

    from mnistlab.serve.export import onnx_graph

    session = ort_session(onnx_graph(loaded))
    got = session.run(None, {"input": x.numpy()})[0]
    assert np.abs(got - want.numpy()).max() <= 1e-4
    assert np.abs(got - raw.numpy()).max() > 0.1  # the graph divides by T too
