"""The pictures (analysis/plots): image grids drawn as one mosaic, tile by tile."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mnistlab.analysis.plots.common import _tiles, plot_grid


def test_equal_sized_grey_images_are_tiled_unchanged():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    tiles = _tiles(images, 28, 28)  # (5, 28, 28, 3)
    assert tiles.shape == (5, 28, 28, 3)
    for c in range(3):
        assert np.array_equal(tiles[..., c], images)


def test_other_sizes_are_fitted_in_with_their_aspect_kept_on_white():
    wide = np.zeros((50, 100), np.uint8)  # a black 2:1 photo -> 28 x 14, centred
    (tile,) = _tiles([wide], 28, 28)
    dark = np.argwhere(tile[..., 0] == 0)
    assert dark.min(0).tolist() == [7, 0] and dark.max(0).tolist() == [20, 27]
    assert (tile[:7] == 255).all() and (tile[21:] == 255).all()

    clear = np.zeros((10, 10, 4), np.uint8)  # fully transparent: white paper, not black
    (tile,) = _tiles([clear], 28, 28)
    assert (tile == 255).all()

    red = np.zeros((14, 14, 3), np.uint8)
    red[..., 0] = 255  # small: enlarged pixel by pixel, colour kept
    (tile,) = _tiles([red], 28, 28)
    assert (tile[..., 0] == 255).all() and (tile[..., 1:] == 0).all()


def test_a_grid_of_mixed_images_and_an_empty_grid_are_written(tmp_path):
    images = [np.zeros((28, 28), np.uint8), np.full((60, 40, 3), 128, np.uint8)]
    grid = plot_grid(images, ["a", "b"], tmp_path / "grid.png", "two", colors=["red", "green"])
    with Image.open(grid) as im:
        assert im.format == "PNG" and im.width > im.height
    empty = plot_grid(np.zeros((0, 28, 28), np.uint8), [], tmp_path / "empty.png", "none")
    with Image.open(empty) as im:
        assert im.format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.png", "grid.png"]
