"""The device-resident loader: normalisation, the seeded split and batch order."""

from __future__ import annotations

import pytest
import torch

from mnistlab.data import DeviceLoader, load_data, normalize


def test_normalize_matches_hand_values():
    x = torch.tensor([0, 255, 51], dtype=torch.uint8)
    # (0/255 - 0.1307)/0.3081 = -0.424213; (1 - 0.1307)/0.3081 = 2.821487; 0.2 -> 0.224927
    expected = torch.tensor([-0.424213, 2.821487, 0.224927])
    assert torch.allclose(normalize(x, 0.1307, 0.3081), expected, atol=1e-5)


def test_normalised_training_set_has_zero_mean_unit_std(mnist):
    x = normalize(mnist.train[0], 0.1307, 0.3081)
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1) < 0.01


def test_validation_split_is_seeded_disjoint_and_complete(mnist, mnist_dir):
    tr, va = mnist.train, mnist.val
    assert len(tr[0]) == 55_000 and len(va[0]) == 5_000 and len(mnist.test[0]) == 10_000
    assert tr[0].dtype == torch.uint8 and tr[0].shape[1:] == (1, 28, 28)
    again = load_data("mnist", mnist_dir, "cpu", val_size=5000, seed=0)
    assert torch.equal(again.val[0], va[0]) and torch.equal(again.val[1], va[1])
    other = load_data("mnist", mnist_dir, "cpu", val_size=5000, seed=1)
    assert not torch.equal(other.val[1], va[1])
    # together the two parts hold each training label exactly as often as the file
    counts = torch.bincount(torch.cat([tr[1], va[1]]), minlength=10).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    # and no image is in both: compare exact pixel hashes
    h = lambda x: {hash(bytes(img.numpy().tobytes())) for img in x}  # noqa: E731
    assert not h(va[0]) & h(tr[0][:20000])


def test_no_validation_keeps_the_file_order(mnist_dir):
    data = load_data("mnist", mnist_dir, "cpu", val_size=0)
    assert data.val is None and data.train[1][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_bad_split_sizes_are_usage_errors(mnist_dir):
    from mnistlab.errors import UsageError

    with pytest.raises(UsageError, match="val_size must be between 0 and 59999") as exc:
        load_data("mnist", mnist_dir, val_size=60_000)
    assert exc.value.cli_message().startswith("--val-size must be")


def _loader(n=103, bs=10, **kw):
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1).expand(n, 1, 28, 28)
    return DeviceLoader(images.contiguous(), torch.arange(n), bs, 0.0, 1 / 255, **kw)


def test_every_sample_once_per_epoch_in_a_seeded_order():
    loader = _loader(shuffle=True, seed=5)
    assert len(loader) == 11  # 10 full batches and a last one of 3
    ys = torch.cat([y for _, y in loader.batches(epoch=1)])
    assert sorted(ys.tolist()) == list(range(103))
    assert torch.equal(ys, torch.cat([y for _, y in _loader(shuffle=True, seed=5).batches(1)]))
    assert not torch.equal(ys, torch.cat([y for _, y in loader.batches(epoch=2)]))


def test_batches_pair_images_with_labels_and_normalise():
    for x, y in _loader(shuffle=True).batches(0):
        # mean 0, std 1/255 turns pixel value v into v exactly
        assert torch.equal(x[:, 0, 0, 0], y.float())


def test_drop_last_and_resuming_mid_epoch():
    loader = _loader(shuffle=True, seed=2, drop_last=True)
    assert len(loader) == 10
    full = [y for _, y in loader.batches(3)]
    tail = [y for _, y in loader.batches(3, start=6)]
    assert len(tail) == 4 and all(torch.equal(a, b) for a, b in zip(full[6:], tail, strict=True))


def test_max_batches_caps_an_epoch():
    assert len(_loader(max_batches=2)) == 2
