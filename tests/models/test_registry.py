"""Tests generated from the registry: every model is covered without a new test."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from mnistlab import (
    MnistlabError,
    UsageError,
    create_model,
    list_models,
    load_checkpoint,
    save_checkpoint,
)
from mnistlab.data import normalize
from mnistlab.models import ModelMeta, count_params
from mnistlab.runs.checkpoint import CheckpointError

# Parameter counts worked out by hand (weights + biases; BatchNorm has 2 per channel).
KNOWN_PARAMS = {
    # conv 1->10 5x5: 10*25+10 = 260; conv 10->20 5x5: 20*10*25+20 = 5,020;
    # fc 320->50: 16,050; fc 50->10: 510.  Total 21,840 (seed 000).
    "cnn": 21_840,
    # 784*256+256 = 200,960; 256*64+64 = 16,448; 64*10+10 = 650.  Total 218,058.
    "mlp": 218_058,
    # conv 1->16 5x5 no bias: 400; BN 32; conv 16->32 5x5 no bias: 12,800; BN 64;
    # fc 512->128: 65,664; fc 128->10: 1,290.  Total 80,250.
    "fast": 80_250,
    # conv 1->8 5x5 no bias: 200; conv 8->32 5x5 no bias: 6,400; BN 64; fc 512->256 no
    # bias: 131,072; BN 512; fc 256->10: 2,570.  Total 140,818.
    "speedrun": 140_818,
    # 784*10+10 (the linear classifier)
    "softmax": 7_850,
    # 784*512+512 = 401,920; 512*256+256 = 131,328; 256*128+128 = 32,896;
    # 128*64+64 = 8,256; 64*10+10 = 650.  Total 575,050.
    "linear": 575_050,
    # 784*128+128 = 100,480; 128*64+64 = 8,256; 650.  Total 109,386.
    "mlp-small": 109_386,
    # conv 1->32 3x3: 320; conv 32->64 3x3: 18,496; fc 9216->128: 1,179,776; fc 128->10: 1,290.
    "pytorch-example": 1_199_882,
    # conv 6@5x5: 156; conv 16@5x5: 2,416; conv 120@5x5: 48,120; fc 120->84: 10,164; 84->10: 850.
    "lenet5": 61_706,
    # conv 6@5x5 (pad 2): 156; conv 16@5x5: 2,416; fc 400->120: 48,120; 10,164; 850.
    "lenet": 61_706,
    # lenet + BatchNorm 2*(6 + 16 + 120 + 84) = 452.
    "lenet-bn": 62_158,
    # conv1 260; Inception(c) = 72c + 72 + (5x5: 9,624) + (3x3s: 3,480 + 5,208):
    # c=10 -> 19,104, c=20 -> 19,824; conv2 88->20 5x5: 44,020; fc 1408->10: 14,090.
    "inception": 97_298,
    # conv 1->16 5x5: 416; block(16) 2*(16*16*9+16) = 4,640; conv 16->32 5x5: 12,832;
    # block(32) 2*(32*32*9+32) = 18,496; fc 512->10: 5,130.  Total 41,514.
    "resnet": 41_514,
    # bias-free 3x3 convs 288 + 9,216 + 18,432 + 36,864 + 73,728 + 147,456 = 285,984;
    # BatchNorm 2*(32+32+64+64+128+128) = 896; fc 128->10 1,280; BatchNorm1d(10) 20.
    "best": 288_180,
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
def test_channels_last_computes_the_same_function(name, batch):
    # Training runs NHWC by default (--channels-last). Both float32 layouts are held
    # against a float64 reference. NCHW agrees to ~1e-6; NHWC BatchNorm on the CPU
    # computes batch statistics less precisely (~1e-4 in activations, a few
    # percent in gradients of BN nets), so its bounds are looser, but a layout bug
    # (a permuted axis, a wrong stride) would be off by order one.
    torch.manual_seed(0)
    nchw = create_model(name)
    exact = copy.deepcopy(nchw).double()
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    models = {"nchw": nchw, "nhwc": nhwc, "exact": exact}
    for m in (m for model in models.values() for m in model.modules()):
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0  # masks are drawn in memory order, so they differ between layouts
    x, y = batch
    outs, grads = {}, {}
    for key, model in models.items():  # train mode: BatchNorm uses the batch statistics
        outs[key] = model(x.double() if key == "exact" else x)
        F.cross_entropy(outs[key], y).backward()
        grads[key] = [p.grad.double() for p in model.parameters()]
    scale = outs["exact"].abs().max()
    biggest = max(g.norm() for g in grads["exact"])
    for key, out_tol, grad_tol in (("nchw", 1e-5, 1e-2), ("nhwc", 1e-3, 5e-2)):
        assert (outs[key].double() - outs["exact"]).abs().max() / scale < out_tol, key
        params = zip(nchw.named_parameters(), grads[key], grads["exact"], strict=True)
        for (pname, _), g, truth in params:
            if truth.norm() > 1e-6 * biggest:  # a bias right before BatchNorm has zero gradient
                rel = ((g - truth).norm() / truth.norm()).item()
                assert rel < grad_tol, f"{key} {pname}: gradient off by {rel:.1e} (relative)"


@pytest.mark.slow
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
def test_parameter_count_matches_hand_count_and_torchinfo(name):
    from torchinfo import summary

    assert name in KNOWN_PARAMS, f"add {name}'s hand-counted parameters to KNOWN_PARAMS"
    model = create_model(name)
    assert count_params(model) == KNOWN_PARAMS[name]
    stats = summary(model, input_size=(2, 1, 28, 28), verbose=0)
    assert stats.total_params == KNOWN_PARAMS[name]


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
    assert list_models("lenet*") == ["lenet", "lenet-bn", "lenet5"]
    assert list_models() == sorted(list_models())


def test_the_zoo_is_complete():
    seeds = {"softmax", "linear", "mlp", "mlp-small", "cnn", "pytorch-example", "lenet5"}
    seeds |= {"lenet", "lenet-bn", "inception", "resnet", "fast", "best"}
    assert seeds <= set(MODELS)


def test_lenet5_sees_32x32_and_lenet_fc1_takes_16x5x5():
    shapes = {}
    lenet5 = create_model("lenet5").eval()
    lenet5.conv1.register_forward_hook(lambda m, i, o: shapes.update(lenet5=i[0].shape))
    lenet5(torch.zeros(1, 1, 28, 28))
    assert shapes["lenet5"] == (1, 1, 32, 32)
    lenet = create_model("lenet").eval()
    fc1 = next(m for m in lenet if isinstance(m, torch.nn.Linear))
    assert fc1.in_features == 16 * 5 * 5


# --- layer names ---------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_every_layer_has_a_name_not_a_number(name):
    # summary, inspect and the checkpoint's tensors show these names: 'conv1', not '0'
    model = create_model(name)
    numbered = [path for path, _ in model.named_modules() if path.rsplit(".", 1)[-1].isdigit()]
    assert not numbered, f"{name}: layers named by number: {numbered}"


def _save_with_numbered_keys(stem, model, keys):
    """A checkpoint as mnistlab wrote it while models were numbered ``nn.Sequential``s:
    ``keys`` replace the state dict's names one by one, in order."""
    save_checkpoint(stem, model)
    tensors = dict(zip(keys, model.state_dict().values(), strict=True))
    weights = stem.with_suffix(".safetensors")
    save_file({k: v.contiguous().clone() for k, v in tensors.items()}, str(weights))
    doc = json.loads(stem.with_suffix(".json").read_text())
    doc["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    stem.with_suffix(".json").write_text(json.dumps(doc))


def _old_keys(model):
    """The keys a numbered nn.Sequential had: the layer's position, then its tensor's name."""
    return [f"{i}.{k}" for i, layer in enumerate(model) for k in layer.state_dict()]


def _same_outputs(a, b):
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def test_a_checkpoint_with_numbered_layers_still_loads(tmp_path):
    # cnn was Conv2d 0, ReLU 1, MaxPool2d 2, Conv2d 3, ReLU 4, MaxPool2d 5, Flatten 6,
    # Linear 7, Linear 8
    old = ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "8.weight", "8.bias"]
    torch.manual_seed(1)
    model = create_model("cnn")
    assert _old_keys(model) == old
    _save_with_numbered_keys(tmp_path / "old", model, old)
    loaded, _ = load_checkpoint(tmp_path / "old.json")
    assert list(loaded.state_dict()) == list(model.state_dict())  # conv1.weight ...
    assert _same_outputs(loaded, model)


@pytest.mark.parametrize(
    "name", [n for n in MODELS if isinstance(create_model(n), torch.nn.Sequential)]
)
def test_numbered_checkpoints_of_every_sequential_model_load(name, tmp_path):
    # includes BatchNorm buffers, and layer 11 (lenet's) which sorts before 3 as text
    torch.manual_seed(1)
    model = create_model(name).train()
    model(torch.randn(8, 1, 28, 28))  # BatchNorm's running statistics move off 0 and 1
    _save_with_numbered_keys(tmp_path / "old", model, _old_keys(model))
    loaded, _ = load_checkpoint(tmp_path / "old.json")
    assert _same_outputs(loaded, model)


def test_numbered_weights_that_do_not_fit_are_still_refused(tmp_path):
    # the same layers and tensor names, but fast at width 16 loaded as width 8
    model = create_model("fast")
    _save_with_numbered_keys(tmp_path / "ck", model, _old_keys(model))
    doc = json.loads((tmp_path / "ck.json").read_text())
    doc["model"]["kwargs"] = {"width": 8}
    (tmp_path / "ck.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="do not fit model 'fast'") as e:
        load_checkpoint(tmp_path / "ck.json")
    assert "16 missing, e.g. 'conv1.weight', 16 unexpected" in str(e.value)
    # another number of layers: cnn's eight tensors are not lenet's ten
    model = create_model("cnn")
    _save_with_numbered_keys(tmp_path / "ck", model, _old_keys(model))
    doc = json.loads((tmp_path / "ck.json").read_text())
    doc["model"]["name"] = "lenet"
    (tmp_path / "ck.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="do not fit model 'lenet'"):
        load_checkpoint(tmp_path / "ck.json")


def test_an_old_fast_with_batchnorm_before_pooling_is_refused(tmp_path):
    # fast v2 was conv 0, bn 1, relu 2, pool 3, conv 4, bn 5 ...: the same tensors and
    # shapes in the same order as today's conv1, bn1 (position 2) ..., but BatchNorm's
    # statistics were taken before pooling, so loading them would be silently wrong
    model = create_model("fast")
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    v2 = ["0.weight", *(f"1.{k}" for k in bn), "4.weight", *(f"5.{k}" for k in bn)]
    v2 += ["9.weight", "9.bias", "11.weight", "11.bias"]
    _save_with_numbered_keys(tmp_path / "v2", model, v2)
    with pytest.raises(CheckpointError, match="do not fit model 'fast'"):
        load_checkpoint(tmp_path / "v2.json")
    # and the numbering of today's fast (bn at 2 and 6) loads
    _save_with_numbered_keys(tmp_path / "v3", model, _old_keys(model))
    assert _same_outputs(load_checkpoint(tmp_path / "v3.json")[0], model)


def test_model_settings_are_checked_against_what_the_model_takes():
    with pytest.raises(UsageError, match="takes only width, hidden"):
        create_model("fast", depth=3)
    with pytest.raises(UsageError, match="width must be a whole number from 1 to"):
        create_model("fast", width=10**9)  # would try to allocate terabytes
    assert create_model("lenet5", ops="im2col").meta.kwargs == {"ops": "im2col"}
