"""Each dataset trains with its own default augmentation, chosen on its validation split
(docs/models.md): MNIST with the handwriting set, Fashion-MNIST with none. The user's
--augment always wins, and config.json records what was trained.

Also the augmentations measured for Fashion-MNIST, ``hflip`` and ``shift``: pure,
seeded, and geometrically what they claim.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mnistlab import TrainConfig
from mnistlab.cli import main
from mnistlab.data.augment import hflip, make_augment, shift

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST not installed in {FASHION} (apt-get install dataset-fashion-mnist)",
)
SMALL = ["--train-subset", "512", "--val-size", "256", "--threads", "1", "--dry-run"]


def test_the_default_augmentation_is_the_datasets_own():
    assert TrainConfig().augment == "affine2+thickness+ink+lowres"
    assert TrainConfig(dataset="fashion-mnist").augment == "none"
    assert TrainConfig(dataset="fashion-mnist", augment="hflip").augment == "hflip"
    # a preset that leaves augment out gets the dataset's; one that sets it keeps its own
    assert TrainConfig.from_preset("speedrun", dataset="fashion-mnist").augment == "none"
    assert TrainConfig.from_preset("best", dataset="fashion-mnist").augment == "affine"


@needs_fashion
@pytest.mark.parametrize(
    "flags,augment",
    [
        (["--dataset", "fashion-mnist"], "none"),
        (["--dataset", "fashion-mnist", "--augment", "affine"], "affine"),
        ([], "affine2+thickness+ink+lowres"),
    ],
)
def test_the_run_records_the_augmentation_it_trained_with(flags, augment, tmp_path, capsys):
    argv = ["train", *flags, *SMALL, "--out-dir", str(tmp_path), "--name", "r"]
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["augment"] == augment


def _images(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("spec", ["hflip", "shift", "hflip+shift"])
def test_hflip_and_shift_are_pure_and_seeded(spec):
    fn, x = make_augment(spec), _images()
    before = x.clone()
    a = fn(x, torch.Generator().manual_seed(0))
    b = fn(x, torch.Generator().manual_seed(0))
    c = fn(x, torch.Generator().manual_seed(1))
    assert torch.equal(x, before) and torch.equal(a, b) and not torch.equal(a, c)


def test_hflip_mirrors_about_half_the_images_exactly():
    x = _images(200)
    y = hflip(x, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(y[i], x[i].flip(-1)) for i in range(len(x))]
    kept = [torch.equal(y[i], x[i]) for i in range(len(x))]
    assert all(m != k for m, k in zip(mirrored, kept, strict=True))  # one or the other
    assert 70 <= sum(mirrored) <= 130


def test_shift_moves_a_dot_by_whole_pixels_without_blurring_it():
    x = torch.zeros(64, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0
    y = shift(x, torch.Generator().manual_seed(0), pixels=2)
    moves = set()
    for img in y[:, 0]:
        ((row, col),) = torch.nonzero(img).tolist()  # one pixel lit, at full ink
        assert img[row, col] == 1.0
        moves.add((row - 14, col - 14))
    assert moves <= {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert len(moves) > 10  # both directions, both axes
