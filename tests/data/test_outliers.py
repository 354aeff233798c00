"""Outlier exposure: the non-digit images, how batches carry them, the loss on them,
and the reject threshold fitted from validation scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from mnistlab.data import DeviceLoader, outliers
from mnistlab.data.outliers import (
    SHAPES,
    TRAIN_FONTS,
    VAL_FONTS,
    outlier_images,
    outlier_kinds,
    render_glyph,
    render_set,
    render_shape,
    to_mnist_frame,
)
from mnistlab.errors import UsageError
from mnistlab.models._reject import fit_threshold, is_digit
from mnistlab.train import TrainConfig, make_loss

# --- the images ---------------------------------------------------------------


def test_outliers_are_framed_like_mnist_digits():
    x = outlier_images("val")
    assert x.dtype == np.uint8 and x.shape == (5000, 28, 28)
    for img in x[:200]:
        ys, xs = np.nonzero(img)
        # the ink's longer side is 20 px (at most one more from the box filter's edge)
        assert 19 <= max(np.ptp(ys), np.ptp(xs)) + 1 <= 21
        cy, cx = ndimage.center_of_mass(img.astype(float))
        assert abs(cy - 14) <= 2 and abs(cx - 14) <= 2


@pytest.mark.slow  # renders all 25,000 (about 13 s)
def test_the_shipped_sets_are_what_the_code_makes_and_apart_by_split():
    # seeded: made again here, the same images and kinds as the files shipped (made by
    # `python -m mnistlab.data.outliers`, in another process, on another day)
    sets = {}
    for split, size in (("val", 5_000), ("train", 20_000)):
        images, kinds = render_set(split)
        assert images.shape == (size, 28, 28)
        assert np.array_equal(outlier_images(split), images), "run python -m mnistlab.data.outliers"
        assert np.array_equal(outlier_kinds(split), kinds)
        sets[split] = images
    val, train = sets["val"], sets["train"]
    assert not {hash(i.tobytes()) for i in val[:500]} & {hash(i.tobytes()) for i in train}
    assert not set(TRAIN_FONTS) & set(VAL_FONTS)


def test_a_set_made_from_other_values_is_made_again_not_loaded(monkeypatch):
    # the shipped file says what it was made from: a change of those values here makes
    # the set again (the same seed and fonts: the first images are the same)
    monkeypatch.setitem(outliers.SIZES, "val", 300)
    outlier_images.cache_clear()
    try:
        assert outliers._shipped("val") is None
        assert np.array_equal(outlier_images("val"), render_set("val")[0])
        assert len(outlier_images("val")) == 300
    finally:
        outlier_images.cache_clear()


@pytest.mark.parametrize("damage", [b"", b"not xz at all", "truncated", "not a zip"])
def test_a_missing_or_damaged_shipped_set_is_drawn_again(monkeypatch, tmp_path, damage):
    import lzma

    shipped = (outliers.SHIPPED / "val.npz.xz").read_bytes()
    data = {
        "truncated": shipped[: len(shipped) // 2],
        "not a zip": lzma.compress(b"PK\x03\x04 but nothing after"),
    }.get(damage, damage)
    (tmp_path / "val.npz.xz").write_bytes(data)
    monkeypatch.setattr(outliers, "SHIPPED", tmp_path)
    outlier_images.cache_clear()
    try:
        assert outliers._shipped("val") is None
        assert np.array_equal(outlier_images("val", 300), render_set("val", 300)[0])
    finally:
        outlier_images.cache_clear()


def test_a_dry_runs_outliers_are_the_first_of_the_whole_set():
    # a dry run takes 512 of each set, not 20,000 + 5,000: the same images, in order
    for split in ("val", "train"):
        few = outlier_images(split, 512)
        assert few.shape == (512, 28, 28)
        assert np.array_equal(few, outlier_images(split)[:512])


def test_a_rendered_letter_and_a_drawn_shape_have_ink_where_expected():
    letter = to_mnist_frame(render_glyph("A", "DejaVuSans.ttf"))
    # an A: a point at the top, two legs apart at the bottom
    assert letter[4:8, 12:16].max() > 100 and letter[22:25].astype(bool).sum() >= 4
    rng = np.random.default_rng(0)
    for kind in SHAPES:
        assert render_shape(kind, rng).max() > 0, kind
    assert to_mnist_frame(np.zeros((64, 64), np.float32)) is None


# --- batches --------------------------------------------------------------------


def _loader(rows=4, world_size=1, rank=0, augment=None, n=40, bs=8):
    digits = torch.full((n, 1, 28, 28), 7, dtype=torch.uint8)
    outliers = torch.arange(50, 80, dtype=torch.uint8).reshape(30, 1, 1, 1).expand(30, 1, 28, 28)
    kw = dict(shuffle=True, seed=3, drop_last=True, augment=augment)
    return DeviceLoader(
        digits,
        torch.arange(n),
        bs,
        0.0,
        1 / 255,
        **kw,
        rank=rank,
        world_size=world_size,
        outliers=outliers.contiguous(),
        outlier_rows=rows,
    )


def test_each_batch_carries_its_outliers_last_labelled_minus_one():
    x, y = next(_loader().batches(1))
    assert x.shape == (12, 1, 28, 28)
    assert (y[:8] >= 0).all() and (y[8:] == -1).all()
    assert (x[:8] == 7).all()  # normalised with mean 0, std 1/255: the raw values
    assert ((x[8:, 0, 0, 0] >= 50) & (x[8:, 0, 0, 0] < 80)).all()
    again = next(_loader().batches(1))
    assert torch.equal(again[0], x)  # the same draw for the same (seed, epoch, batch)


def test_ranks_share_digits_and_outliers_alike():
    from mnistlab.data.augment import make_augment

    for augment in (None, make_augment("shift")):
        whole = next(_loader(augment=augment).batches(2))
        parts = [next(_loader(world_size=2, rank=r, augment=augment).batches(2)) for r in (0, 1)]
        for r, (x, y) in enumerate(parts):
            assert torch.equal(y, torch.cat([whole[1][4 * r : 4 * r + 4], torch.full((2,), -1)]))
            assert torch.equal(x[:4], whole[0][4 * r : 4 * r + 4])
            assert torch.equal(x[4:], whole[0][8 + 2 * r : 10 + 2 * r])


def test_outliers_that_do_not_split_between_ranks_are_refused():
    with pytest.raises(UsageError, match="3 outliers a batch do not divide into 2"):
        _loader(rows=3, world_size=2)


# --- the loss ---------------------------------------------------------------------


def test_outlier_loss_is_cross_entropy_to_uniform_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0], [3.0, 0.0, 0.0]])
    y = torch.tensor([0, -1, -1])
    ce0 = -(2 - math.log(math.exp(2) + 2))  # the digit: plain cross-entropy
    # outliers: log-sum-exp minus the mean logit, log 3 and log(e^3 + 2) - 1
    out = (math.log(3) + math.log(math.exp(3) + 2) - 1) / 2
    loss = make_loss("ce", 0.0, 3, outlier_weight=0.5)(logits, y)
    assert loss.item() == pytest.approx(ce0 + 0.5 * out, rel=1e-6)
    # without outliers in the batch, the loss is plain cross-entropy
    plain = make_loss("ce", 0.0, 3, outlier_weight=0.5)(logits[:1], y[:1])
    assert plain.item() == pytest.approx(ce0, rel=1e-6)


def test_the_default_recipe_adds_one_outlier_per_eight_digits_with_cross_entropy_only():
    assert TrainConfig().outliers == 0.125 and TrainConfig().outlier_rows() == 32
    assert TrainConfig(loss="mse", label_smoothing=0.0).outliers == 0.0
    assert TrainConfig(dataset="fashion-mnist").outliers == 0.0
    with pytest.raises(UsageError, match="outliers work with loss ce only"):
        TrainConfig(loss="mse", label_smoothing=0.0, outliers=0.1).validate()
    with pytest.raises(UsageError, match="outliers must be in"):
        TrainConfig(outliers=1.5).validate()
    # a config saved before outlier exposure resumes without outliers
    saved = TrainConfig().to_dict()
    del saved["outliers"]
    assert TrainConfig.from_dict(saved).outliers == 0.0


# --- the threshold -------------------------------------------------------------------


def test_threshold_rejects_at_most_its_share_of_validation_digits():
    digits = np.linspace(0.5, 1.0, 1000)  # 0.2% of them: the 2 lowest
    outliers = np.linspace(0.1, 0.9, 1000)
    t = fit_threshold(digits, outliers)
    assert (digits < t).sum() <= 2
    # outliers well apart: the threshold drops to where 1% fewer of them are caught
    apart = np.linspace(0.1, 0.3, 1000)
    t = fit_threshold(digits, apart)
    assert (apart < t).mean() == pytest.approx(0.99, abs=0.002) and (digits < t).sum() == 0
    assert is_digit(np.array([0.2, t]), t).tolist() == [False, True]
    assert is_digit(np.array([0.0]), None).tolist() == [True]
