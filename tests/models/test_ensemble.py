"""An ensemble as a model (``models/_ensemble.py``): the mean of its members' probabilities,
against softmax by hand and in ONNX; nested ensembles and other classes refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnistlab import load_checkpoint
from mnistlab.errors import MnistlabError
from mnistlab.models import Ensemble, create_model, set_temperature
from mnistlab.runs.checkpoint import save_checkpoint
from tests.support.references import (
    MNIST_MEAN,
    MNIST_STD,
    ensemble_of,
    ort_session,
    two_members,
)


def test_ensemble_is_the_mean_of_its_members_probabilities(tmp_path):
    a, b = two_members()
    e = ensemble_of(a, b)
    keys = list(e.state_dict())
    assert keys[0] == "members.0.conv1.weight"
    assert "members.1.bn1.running_mean" in keys and "members.1.fc2.bias" in keys
    assert {k.split(".")[1] for k in keys} == {"0", "1"}

    # each member fresh, without temperature, fed the raw pixels normalised its own way
    a_raw = create_model("cnn")
    a_raw.load_state_dict(a.state_dict())
    b_raw = create_model("fast")
    b_raw.load_state_dict(b.state_dict())
    a_raw.eval()
    b_raw.eval()
    pixels = torch.rand(32, 1, 28, 28)
    with torch.no_grad():
        za = a_raw((pixels - 0.5) / 0.5).double()
        zb = b_raw((pixels - MNIST_MEAN) / MNIST_STD).double()
        got = e((pixels - MNIST_MEAN) / MNIST_STD)
    by_hand = torch.log((F.softmax(za / 2.0, 1) + F.softmax(zb, 1)) / 2)
    assert (za.abs().max() > 2) and not torch.allclose(F.softmax(za / 2, 1), F.softmax(zb, 1))
    assert torch.allclose(got.double(), by_hand, atol=1e-5)
    assert torch.allclose(torch.logsumexp(got, 1), torch.zeros(32), atol=1e-5)

    save_checkpoint(tmp_path / "best", e, {"dataset": "mnist"})
    loaded, doc = load_checkpoint(tmp_path / "best.json")
    assert isinstance(loaded, Ensemble) and loaded.meta.name == "ensemble"
    members = doc["model"]["kwargs"]["members"]
    assert [m["name"] for m in members] == ["cnn", "fast"]
    assert (members[0]["mean"], members[0]["std"], members[0]["temperature"]) == (0.5, 0.5, 2.0)
    with torch.no_grad():
        again = loaded((pixels - MNIST_MEAN) / MNIST_STD)
    assert torch.allclose(again, got, atol=1e-6)


def test_ensemble_in_onnx_gives_the_torch_output():
    from mnistlab.serve.export import onnx_graph

    a, b = two_members()
    e = ensemble_of(a, b)
    set_temperature(e, 0.7)  # the ensemble's own temperature, on top of its members'
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        want = e(x).numpy()
    session = ort_session(onnx_graph(e))
    got = session.run(None, {"input": x.numpy()})[0]
    assert got.shape == (8, 10)
    assert np.abs(got - want).max() <= 1e-4


def test_ensemble_refuses_a_nested_ensemble_and_other_classes():
    a, b = two_members()
    inner = ensemble_of(a, b)
    with pytest.raises(MnistlabError, match="member 1 is an ensemble"):
        create_model("ensemble", members=[a.meta.to_dict(), inner.meta.to_dict()])
    letters = create_model("cnn", class_names=list("abcdefghij"))
    with pytest.raises(MnistlabError, match=r"member 1 .* same classes"):
        create_model("ensemble", members=[a.meta.to_dict(), letters.meta.to_dict()])
    with pytest.raises(MnistlabError, match="1 to 64 members"):
        create_model("ensemble", members=[])
    bad = {**a.meta.to_dict(), "temperature": -1}
    with pytest.raises(MnistlabError, match=r"member 0: model\.temperature"):
        create_model("ensemble", members=[bad])
