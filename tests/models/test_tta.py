"""Test-time augmentation (``models/_tta.py``): the views against shifts and rotations
written out by hand, and their average."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnistlab.models import (
    ModelMeta,
    _tta,
    create_model,
    with_tta,
)
from mnistlab.models._tta import VIEWS, _grid
from tests.support.references import (
    ensemble_of,
    randomised,
    tta_probs_by_hand,
    two_members,
)


class Quadrants(nn.Module):
    """Logits = 20 x the ink (un-normalised pixel values) in each quadrant: top-left,
    top-right, bottom-left, bottom-right. Records the pixel values it was shown."""

    def __init__(self):
        super().__init__()
        self.meta = ModelMeta(
            name="quadrants", mean=0.25, std=0.5, class_names=("tl", "tr", "bl", "br")
        )
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        raw = x * self.meta.std + self.meta.mean
        self.seen.append(raw.detach().clone())
        q = raw[:, 0]
        parts = [q[:, :14, :14], q[:, :14, 14:], q[:, 14:, :14], q[:, 14:, 14:]]
        return 20 * torch.stack([p.sum((1, 2)) for p in parts], 1)


def test_grid_moves_a_pixel_one_column_right_and_one_row_down():
    img = torch.zeros(1, 1, 28, 28)
    img[0, 0, 9, 17] = 1.0
    cases = {(1, 0): (9, 18), (-1, 0): (9, 16), (0, 1): (10, 17), (0, -1): (8, 17)}
    for (dx, dy), (row, col) in cases.items():
        out = F.grid_sample(img, _grid(dx, dy, 0), align_corners=False)[0, 0]
        want = torch.zeros(28, 28)
        want[row, col] = 1.0
        assert torch.allclose(out, want, atol=1e-5), (dx, dy)


def test_rotation_views_turn_anticlockwise_about_the_centre():
    img = torch.zeros(1, 1, 28, 28)
    img[0, 0, 12:16, 21:25] = 1.0  # a blob centred on (13.5, 22.5): 9 px right of the centre
    rows = torch.arange(28.0)[:, None]
    for degrees, up in ((10, True), (-10, False)):
        out = F.grid_sample(img, _grid(0, 0, degrees), align_corners=False)[0, 0]
        centroid_row = (out * rows).sum() / out.sum()
        # 9 px from the centre turned 10 degrees: 9 * sin(10) = 1.56 px up (or down)
        shift = 13.5 - centroid_row.item() if up else centroid_row.item() - 13.5
        assert shift == pytest.approx(9 * math.sin(math.radians(10)), abs=0.15)


def test_tta_views_move_the_pixels_and_let_in_background():
    model = Quadrants()
    m = model.meta
    dot = torch.zeros(1, 1, 28, 28)
    dot[0, 0, 13, 13] = 1.0  # the last pixel of the top-left quadrant
    expected = {(1, 0, 0): ("tr", (13, 14)), (0, 1, 0): ("bl", (14, 13))}
    for view, (quadrant, (row, col)) in expected.items():
        tta = _tta.TestTimeAugmentation(model, views=(view,)).eval()
        with torch.no_grad():
            out = tta((dot - m.mean) / m.std)
        seen = model.seen[-1][0, 0]
        want = torch.zeros(28, 28)
        want[row, col] = 1.0
        assert torch.allclose(seen, want, atol=1e-5), view  # background stays 0, not the mean
        assert m.class_names[int(out.argmax())] == quadrant
    # a page full of ink moved right: the column let in on the left is background
    full = torch.ones(1, 1, 28, 28)
    tta = _tta.TestTimeAugmentation(model, views=((1, 0, 0),))
    with torch.no_grad():
        tta((full - m.mean) / m.std)
    seen = model.seen[-1][0, 0]
    assert torch.allclose(seen[:, 0], torch.zeros(28), atol=1e-5)
    assert torch.allclose(seen[:, 1:], torch.ones(28, 27), atol=1e-5)


def test_tta_with_only_the_identity_view_is_the_model():
    model = randomised(create_model("cnn", temperature=1.5), seed=5, logit_scale=10)
    tta = _tta.TestTimeAugmentation(model, views=((0, 0, 0),)).eval()
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(tta(x), F.log_softmax(model(x), 1), atol=1e-5)


def test_tta_averages_the_seven_views_made_by_hand(mnist):
    pytest.importorskip("scipy")
    assert VIEWS == (
        (0, 0, 0),
        (1, 0, 0),
        (-1, 0, 0),
        (0, 1, 0),
        (0, -1, 0),
        (0, 0, 10),
        (0, 0, -10),
    )
    a, b = two_members()
    for model in (a, ensemble_of(a, b)):  # one model; an ensemble of two (its own mean/std)
        m = model.meta
        raw = mnist.test[0][:24].float() / 255
        tta = with_tta(model)
        with torch.no_grad():
            got = tta((raw - m.mean) / m.std)
        want = tta_probs_by_hand(model, raw, m.mean, m.std)
        assert torch.allclose(torch.logsumexp(got, 1), torch.zeros(24), atol=1e-5)
        assert torch.allclose(got.exp().double(), want, atol=1e-5), m.name
