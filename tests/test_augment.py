"""Batch augmentations: pure, seeded, and geometrically what they claim."""

from __future__ import annotations

import pytest
import torch

from mnistlab.data.augment import elastic, make_augment, random_affine


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.test[0][:32].float() / 255  # (32, 1, 28, 28) in [0, 1]


@pytest.mark.parametrize("spec", ["affine", "elastic", "affine+elastic"])
def test_pure_and_seeded(digits, spec):
    fn = make_augment(spec)
    before = digits.clone()
    a = fn(digits, torch.Generator().manual_seed(1))
    b = fn(digits, torch.Generator().manual_seed(1))
    c = fn(digits, torch.Generator().manual_seed(2))
    assert torch.equal(digits, before)  # the input is not modified
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == digits.shape and a.min() >= 0 and a.max() <= 1 + 1e-6
    # ink moves but is roughly conserved: a digit stays a digit
    ratio = a.sum((1, 2, 3)) / digits.sum((1, 2, 3))
    assert ratio.min() > 0.5 and ratio.max() < 2.0
    assert not torch.allclose(a, digits, atol=0.05)


def test_zero_strength_affine_is_the_identity(digits):
    out = random_affine(digits, torch.Generator(), 0.0, 0.0, (1.0, 1.0), 0.0)
    assert torch.allclose(out, digits, atol=1e-5)


def test_translation_moves_the_centre_of_mass_by_the_drawn_shift():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10, 12] = 1.0
    t = 4 / 28
    out = random_affine(x, torch.Generator().manual_seed(7), 0.0, t, (1.0, 1.0), 0.0)
    # random_affine draws rotation, shear, scale, x-shift, y-shift in that order;
    # a shift of u (fraction of the size, in [-t, t]) samples the input u*28 pixels
    # further along, so the content moves by -u*28 pixels.
    g = torch.Generator().manual_seed(7)
    draws = [torch.rand(1, generator=g).item() for _ in range(5)]
    ux, uy = (d * 2 * t - t for d in draws[3:])
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = out[0, 0]
    assert mass.sum().item() == pytest.approx(1.0, abs=1e-5)
    cx, cy = (mass * xs).sum().item(), (mass * ys).sum().item()
    assert cx == pytest.approx(12 - ux * 28, abs=1e-3)
    assert cy == pytest.approx(10 - uy * 28, abs=1e-3)
    assert abs(ux * 28) > 0.5 or abs(uy * 28) > 0.5  # the seed gives a visible move


def test_zero_strength_elastic_is_the_identity(digits):
    assert torch.allclose(elastic(digits, torch.Generator(), alpha=0.0), digits, atol=1e-5)


def test_unknown_augmentation_is_rejected():
    assert make_augment("none") is None
    with pytest.raises(ValueError, match="blur"):
        make_augment("affine+blur")
