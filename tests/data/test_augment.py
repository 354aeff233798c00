"""Batch augmentations: pure, seeded, and geometrically what they claim."""

from __future__ import annotations

import pytest
import torch

from mnistlab.data.augment import (
    AUGMENTATIONS,
    blur,
    elastic,
    flag1,
    ink,
    lowres,
    make_augment,
    random_affine,
    random_affine2,
    thickness,
)


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.test[0][:32].float() / 255  # (32, 1, 28, 28) in [0, 1]


@pytest.mark.parametrize(
    "spec",
    [
        "affine",
        "elastic",
        "affine+elastic",
        "affine2",
        "thickness",
        "ink",
        "blur",
        "lowres",
        "affine2+thickness+ink+blur",
        "affine2+thickness+ink+lowres",
    ],
)
def test_pure_and_seeded(digits, spec):
    fn = make_augment(spec)
    before = digits.clone()
    a = fn(digits, torch.Generator().manual_seed(1))
    b = fn(digits, torch.Generator().manual_seed(1))
    c = fn(digits, torch.Generator().manual_seed(2))
    assert torch.equal(digits, before)  # the input is not modified
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == digits.shape and a.dtype == digits.dtype
    assert a.min() >= 0 and a.max() <= 1 + 1e-6
    # ink moves but is roughly conserved: a digit stays a digit (a thin pen or a thick
    # marker has a fraction or a multiple of the ink, but never none)
    ratio = a.sum((1, 2, 3)) / digits.sum((1, 2, 3))
    low, high = (0.1, 4.0) if "thickness" in spec else (0.5, 2.0)
    assert ratio.min() > low and ratio.max() < high
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
    with pytest.raises(ValueError, match="smudge"):
        make_augment("affine+smudge")


def test_every_augmentation_is_named_in_the_config_error():
    from mnistlab import TrainConfig, UsageError

    with pytest.raises(UsageError) as err:
        TrainConfig(augment="affine+smudge").validate()
    assert all(name in str(err.value) for name in AUGMENTATIONS)
    TrainConfig(augment="affine2+thickness+ink+blur").validate()


def _ink_box(img: torch.Tensor) -> tuple[int, int]:
    """(width, height) of the pixels above 0.3."""
    ys, xs = torch.nonzero(img[0] > 0.3, as_tuple=True)
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def test_affine2_scales_width_and_height_independently():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 6:22, 6:22] = 1.0  # a 16 x 16 square, centred
    assert _ink_box(x[0]) == (16, 16)
    narrow = random_affine2(x, torch.Generator(), 0.0, 0.0, (0.75, 0.75), (1.0, 1.0), 0.0)
    wide = random_affine2(x, torch.Generator(), 0.0, 0.0, (1.0, 1.0), (0.75, 0.75), 0.0)
    assert _ink_box(narrow[0]) == (12, 16)  # width x 0.75, height kept
    assert _ink_box(wide[0]) == (16, 12)
    # the default ranges give width/height ratios away from 1 across a batch
    out = random_affine2(x.repeat(64, 1, 1, 1), torch.Generator().manual_seed(0), 0.0, 0.0)
    cols = (out[:, 0] > 0.3).any(1).sum(1).float()  # (64,) ink width in pixels
    rows = (out[:, 0] > 0.3).any(2).sum(1).float()
    ratio = cols / rows
    assert ratio.min() < 0.85 and ratio.max() > 1.1


def test_affine2_at_zero_strength_is_the_identity(digits):
    out = random_affine2(digits, torch.Generator(), 0.0, 0.0, (1.0, 1.0), (1.0, 1.0), 0.0)
    assert torch.allclose(out, digits, atol=1e-5)


def _width(img: torch.Tensor, row: int = 14) -> float:
    """The ink across one row, in pixels: a stroke's width for a vertical one."""
    return img[0, 0, row].sum().item()


def test_dilation_widens_a_1px_line_to_3px():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 4:24, 12] = 1.0
    out = thickness(x, torch.Generator(), p=1.0, thinner=0.0, thick_px=(2.0, 2.0))
    assert torch.equal(out[0, 0, 14, 11:14], torch.ones(3)) and _width(out) == 3.0
    # half a step: a soft edge of half brightness each side
    half = thickness(x, torch.Generator(), p=1.0, thinner=0.0, thick_px=(1.0, 1.0))
    assert _width(half) == pytest.approx(2.0)


def test_erosion_thins_a_5px_bar_to_3px():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 4:24, 10:15] = 1.0
    out = thickness(x, torch.Generator(), p=1.0, thinner=1.0, thin_px=(2.0, 2.0))
    assert _width(out) == pytest.approx(3.0, abs=0.3)
    assert out[0, 0, 14, 12] == 1.0  # the core stays full brightness
    assert out[0, 0, 14, 10] < 0.5 and out[0, 0, 14, 14] < 0.5  # the edges fade
    one = thickness(x, torch.Generator(), p=1.0, thinner=1.0, thin_px=(1.0, 1.0))
    assert _width(one) == pytest.approx(4.0, abs=0.3)


def test_erosion_that_would_wipe_a_digit_out_is_skipped():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 4:24, 12] = 0.6  # a faint 1-px line: two soft erosions leave almost nothing
    out = thickness(x, torch.Generator(), p=1.0, thinner=1.0, thin_px=(2.0, 2.0), min_ink=0.5)
    assert torch.equal(out, x)


def test_thickness_only_touches_the_picked_fraction(digits):
    out = thickness(digits, torch.Generator().manual_seed(0), p=0.5)
    changed = (out != digits).flatten(1).any(1).float().mean().item()
    assert 0.2 < changed < 0.8
    assert torch.equal(thickness(digits, torch.Generator(), p=0.0), digits)


def test_ink_gamma_and_binarisation():
    x = torch.linspace(0, 1, 28).view(1, 1, 1, 28).expand(4, 1, 28, 28).contiguous()
    square = ink(x, torch.Generator(), p=1.0, gamma=(2.0, 2.0), peak=(1.0, 1.0), binary=0.0)
    assert torch.allclose(square, x**2)
    faint = ink(x, torch.Generator(), p=1.0, gamma=(1.0, 1.0), peak=(0.5, 0.5), binary=0.0)
    assert torch.allclose(faint, x * 0.5)
    binary = ink(x, torch.Generator(), p=0.0, binary=1.0)
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(binary, (x > 0.5).float())


def test_blur_spreads_a_dot_and_keeps_its_peak():
    x = torch.zeros(2, 1, 28, 28)
    x[:, 0, 14, 14] = 0.8
    out = blur(x, torch.Generator(), p=1.0, sigma=(1.0, 1.0))
    assert out.amax().item() == pytest.approx(0.8)
    assert (out[0, 0] > 0.05).sum() > 9  # wider than the dot
    assert out[0, 0, 14, 13] == pytest.approx(out[0, 0, 14, 15])  # and symmetric
    assert torch.equal(blur(x, torch.Generator(), p=0.0), x)


def test_lowres_at_full_size_is_the_identity(digits):
    out = lowres(digits, torch.Generator(), p=1.0, side=(28, 28))
    assert torch.allclose(out, digits, atol=1e-5)


def test_lowres_spreads_a_hairline_over_a_coarse_pixel_keeping_full_ink():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 4:24, 13] = 1.0  # a 1 px vertical line
    out = lowres(x, torch.Generator(), p=1.0, side=(7, 7))
    # averaged into 4x4 blocks: one block column holds the line at a quarter of full
    # ink; enlarged bilinearly it spreads over 4 to 8 columns, and the brightest
    # pixel is brought back to full ink
    row = out[0, 0, 14]
    assert 4 <= int((row > 0.05).sum()) <= 8 and row.max().item() == pytest.approx(1.0)
    assert torch.equal(lowres(x, torch.Generator(), p=0.0), x)  # not picked: untouched


def test_flag1_gives_only_the_ones_a_flag_down_to_the_left():
    x = torch.zeros(3, 1, 28, 28)
    x[:, 0, 4:24, 14:16] = 1.0  # a vertical stroke, 2 px wide, rows 4-23 (height 20)
    labels = torch.tensor([1, 7, 1])
    gen = torch.Generator().manual_seed(0)
    out = flag1(x, gen, labels, p=1.0, length=(0.4, 0.4), angle=(45.0, 45.0), foot=0.0)
    assert torch.equal(out[1], x[1])  # a 7 keeps its shape
    assert torch.equal(out[0], out[2])  # same strokes, same fixed flag
    added = (out[0, 0] - x[0, 0]) > 0.5
    ys, xs = torch.nonzero(added, as_tuple=True)
    # from the top centre (x 14.5, y 4) down to the left at 45 degrees for 8 px:
    # to about (8.8, 9.7), 2 px wide
    assert xs.min() >= 7 and xs.max() <= 14 and ys.min() >= 3 and ys.max() <= 11
    assert 8 <= int(added.sum()) <= 30
    # the flag runs down to the left: further left, further down
    assert torch.corrcoef(torch.stack([xs.float(), ys.float()]))[0, 1] < -0.8
    # without labels nothing can be picked: the identity, and the stream still advances
    assert torch.equal(flag1(x, torch.Generator().manual_seed(0)), x)


def test_flag1_foot_is_a_bar_across_the_bottom():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 4:24, 14:16] = 1.0
    gen = torch.Generator().manual_seed(0)
    out = flag1(x, gen, torch.tensor([1]), p=1.0, length=(0.0, 0.0), foot=1.0)
    added = (out[0, 0] - x[0, 0]) > 0.5
    ys, xs = torch.nonzero(added, as_tuple=True)
    assert ys.min() >= 21 and ys.max() <= 25  # at the bottom row (23), about 2 px wide
    assert xs.min() < 12 and xs.max() > 17  # across the stroke, both sides


def test_the_loader_passes_labels_to_a_labelled_chain(mnist):
    from mnistlab.data.loader import DeviceLoader

    x, y = mnist.test[0][:256], mnist.test[1][:256]
    ones = int((y == 1).sum())
    assert ones > 10
    plain = DeviceLoader(x, y, 256, 0.0, 1.0)
    flagged = DeviceLoader(x, y, 256, 0.0, 1.0, augment=make_augment("flag1"))
    (a, _), (b, _) = next(plain.batches()), next(flagged.batches())
    changed = (a - b).abs().flatten(1).amax(1) > 0.5
    # only 1s change, about half of them (p = 0.5)
    assert (y[changed] == 1).all() and 0.2 * ones <= int(changed.sum()) <= 0.8 * ones
