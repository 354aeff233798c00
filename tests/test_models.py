"""Tests generated from the registry: every model is covered without a new test."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mnistlab import MnistlabError, UsageError, create_model, list_models
from mnistlab.data import normalize
from mnistlab.models import ModelMeta
from mnistlab.train import count_params

# Parameter counts worked out by hand (weights + biases; BatchNorm has 2 per channel).
KNOWN_PARAMS = {
    # conv 1->10 5x5: 10*25+10 = 260; conv 10->20 5x5: 20*10*25+20 = 5,020;
    # fc 320->50: 16,050; fc 50->10: 510.  Total 21,840 (seed 000).
    "cnn": 21_840,
    # 784*256+256 = 200,960; 256*64+64 = 16,448; 64*10+10 = 650.  Total 218,058.
    "mlp": 218_058,
    # conv 1->32 5x5 no bias: 800; BN 64; conv 32->64 5x5 no bias: 51,200; BN 128;
    # fc 1024->10: 10,250.  Total 62,442.
    "fast": 62_442,
}

MODELS = list_models()


@pytest.fixture(scope="module")
def batch(mnist):
    """64 real training images, normalised, and their labels."""
    x, y = mnist.train
    return normalize(x[:64], 0.1307, 0.3081), y[:64]


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_is_logits(name, batch):
    model = create_model(name).eval()
    out = model(batch[0])
    assert out.shape == (64, 10)
    assert out.dtype == torch.float32
    # logits, not probabilities: rows need not sum to 1
    assert not torch.allclose(out.sum(1), torch.ones(64))


@pytest.mark.parametrize("name", MODELS)
def test_backward_has_finite_gradients(name, batch):
    torch.manual_seed(0)
    model = create_model(name)
    F.cross_entropy(model(batch[0]), batch[1]).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", MODELS)
def test_overfits_one_real_batch(name, batch):
    torch.manual_seed(0)
    x, y = batch
    model = create_model(name)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    acc = 0.0
    for _ in range(300):
        model.train()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x).argmax(1) == y).float().mean().item()
        if acc == 1.0:
            break
    assert acc == 1.0, f"{name} reached only {acc:.0%} on one batch of 64"


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_matches_hand_count(name):
    assert name in KNOWN_PARAMS, f"add {name}'s hand-counted parameters to KNOWN_PARAMS"
    assert count_params(create_model(name)) == KNOWN_PARAMS[name]


@pytest.mark.parametrize("name", MODELS)
def test_meta_travels_with_the_model(name):
    model = create_model(name, mean=0.5, std=0.25, class_names=list("abcdefghij"))
    meta = model.meta
    assert isinstance(meta, ModelMeta)
    assert meta.name == name and meta.input_size == (1, 28, 28)
    assert (meta.mean, meta.std) == (0.5, 0.25)
    assert meta.class_names == tuple("abcdefghij")
    assert meta.source
    assert ModelMeta.from_dict(meta.to_dict()) == meta


def test_fewer_classes_changes_the_head():
    model = create_model("cnn", class_names=["no", "yes"])
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 2)


def test_kwargs_are_recorded_and_used():
    model = create_model("fast", width=8)
    assert model.meta.kwargs == {"width": 8}
    assert count_params(model) < KNOWN_PARAMS["fast"]


def test_unknown_model_is_a_usage_error_listing_choices():
    with pytest.raises(UsageError, match=r"unknown model 'nope'.*cnn"):
        create_model("nope")


def test_bad_kwargs_give_a_clear_error():
    with pytest.raises(MnistlabError, match="bad arguments"):
        create_model("cnn", depth=3)


def test_list_models_pattern():
    assert set(list_models("m*")) == {"mlp"} | {n for n in MODELS if n.startswith("m")}
    assert list_models() == sorted(list_models())
