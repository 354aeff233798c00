"""From-scratch convolution and pooling against torch: outputs, gradients, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnistlab import TrainConfig, create_model, fit
from mnistlab.ops import im2col, layers, loops

IMPLS = {"loops": loops, "im2col": im2col}

# (in channels, out channels, kernel, stride, padding, height, width)
CONVS = [
    (1, 6, 5, 1, 0, 28, 28),  # LeNet-5's first layer
    (3, 4, 3, 2, 1, 9, 13),  # stride, padding and a non-square input
    (2, 5, 3, 1, 2, 7, 11),
    (4, 3, 1, 1, 0, 5, 6),  # 1x1
    (6, 16, 5, 2, 2, 12, 10),
]
# (kernel, stride, padding, height, width)
POOLS = [(2, 2, 0, 28, 28), (3, 2, 1, 9, 13), (3, 1, 1, 7, 6), (2, 1, 0, 5, 8)]


def _same_as_torch(ref: nn.Module, mine: nn.Module, x: torch.Tensor) -> None:
    """Equal outputs, and equal input gradients for the same upstream gradient."""
    x = x.detach().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y_ref, y = ref(x), mine(x2)
    _close(y, y_ref)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    y.backward(g)
    _close(x2.grad, x.grad)


def _close(a, b, tol=1e-5):
    """max |a - b| <= tol, scaled up only where the values themselves exceed 1: a weight
    gradient sums thousands of float32 products and is often ~100 in size."""
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("cfg", CONVS)
def test_conv_forward_and_gradients_equal_torch(impl, cfg):
    c_in, c_out, k, s, p, h, w = cfg
    torch.manual_seed(0)
    ref = nn.Conv2d(c_in, c_out, k, stride=s, padding=p)
    mine = IMPLS[impl].Conv2d(c_in, c_out, k, stride=s, padding=p)
    mine.load_state_dict(ref.state_dict())
    _same_as_torch(ref, mine, torch.randn(3, c_in, h, w))
    _close(mine.weight.grad, ref.weight.grad)
    _close(mine.bias.grad, ref.bias.grad)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("cfg", POOLS)
def test_pool_forward_and_gradients_equal_torch(impl, kind, cfg):
    k, s, p, h, w = cfg
    ref = (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(k, stride=s, padding=p)
    mine = getattr(IMPLS[impl], "MaxPool2d" if kind == "max" else "AvgPool2d")(k, s, p)
    torch.manual_seed(1)
    _same_as_torch(ref, mine, torch.randn(2, 3, h, w))


# small shapes: gradcheck perturbs every input element in float64
GRAD_CONVS = [(2, 3, 3, 2, 1, 5, 7), (1, 2, 3, 1, 2, 4, 6), (3, 2, 1, 1, 0, 3, 4)]


@pytest.mark.parametrize("cfg", GRAD_CONVS)
def test_im2col_conv_backward_passes_gradcheck(cfg):
    c_in, c_out, k, s, p, h, w = cfg
    x = torch.randn(2, c_in, h, w, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(c_out, c_in, k, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(c_out, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: im2col.conv2d(*a, s, p), (x, wt, b))


@pytest.mark.parametrize("mode", ["max", "mean"])
@pytest.mark.parametrize("cfg", [(3, 2, 1, 5, 7), (2, 2, 0, 4, 6), (3, 1, 1, 4, 5)])
def test_im2col_pool_backward_passes_gradcheck(mode, cfg):
    k, s, p, h, w = cfg
    x = torch.randn(1, 2, h, w, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: im2col.pool2d(t, k, s, p, mode), (x,))


def test_the_same_weights_load_into_all_three_lenet5s():
    torch.manual_seed(0)
    ref = create_model("lenet5").eval()
    x = torch.randn(4, 1, 28, 28)
    for ops in ("im2col", "loops"):
        model = create_model("lenet5", ops=ops).eval()
        model.load_state_dict(ref.state_dict())
        _close(model(x), ref(x))
        assert model.meta.kwargs == {"ops": ops}
    assert layers("torch")[0] is nn.Conv2d
    with pytest.raises(ValueError, match="ops must be"):
        layers("cuda")


@pytest.mark.slow
def test_training_with_im2col_ends_within_0_3_points_of_torch(tmp_path, mnist_dir):
    # The same 100 steps (25,600 images, seed 0: the same batches and initial weights)
    # with torch's convolution and with the hand-written one. Half an epoch of the
    # default recipe without augmentation or outliers takes lenet5 past 96% (96.74% with
    # both here), and the two only drift apart by float rounding.
    accs = {}
    for ops in ("torch", "im2col"):
        cfg = TrainConfig(
            model="lenet5",
            model_kwargs={"ops": ops},
            steps=100,
            val_size=500,
            augment="none",
            outliers=0.0,
            seed=0,
            out_dir=str(tmp_path),
            run_name=ops,
            data_dir=str(mnist_dir),
        )
        accs[ops] = fit(cfg).history[-1]["test_acc"]
    assert accs["torch"] > 0.95
    assert abs(accs["im2col"] - accs["torch"]) <= 0.003


def test_functional_forms_match_torch():
    x = torch.randn(2, 3, 10, 10)
    w = torch.randn(4, 3, 3, 3)
    _close(im2col.conv2d(x, w, None, 1, 1), F.conv2d(x, w, None, 1, 1))
    _close(im2col.pool2d(x, 2, 2, 0, "mean"), F.avg_pool2d(x, 2))


@pytest.mark.slow
def test_ops_bench_reports_every_implementation(capsys):
    from mnistlab.cli import main

    assert main(["ops-bench", "--batches", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for ops in ("torch", "im2col", "loops"):
        assert f"│ {ops}" in out
    assert main(["ops-bench", "--batches", "x"]) == 2
