"""How ``to_mnist`` finds the ink: its connected components against a flood fill,
the speck-ignoring box, and Otsu's threshold against scikit-image and a brute-force
search."""

from __future__ import annotations

import numpy as np
import pytest

from mnistlab.serve.preprocess import _components, _ink_box, _otsu

# --- _components (scipy.ndimage.label) against a flood fill, and the speck-ignoring box -------

EIGHT = np.ones((3, 3), dtype=bool)


def _mask(rows: str) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in rows.split()], dtype=bool)


def _flood_fill(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected labels the obvious way, pixel by pixel: the reference."""
    labels, n = np.zeros(mask.shape, dtype=int), 0
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start]:
            continue
        n += 1
        labels[start], todo = n, [start]
        while todo:
            y, x = todo.pop()
            for q in ((y + dy, x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
                inside = 0 <= q[0] < mask.shape[0] and 0 <= q[1] < mask.shape[1]
                if inside and mask[q] and not labels[q]:
                    labels[q] = n
                    todo.append(q)
    return labels, n


def _assert_same_partition(mask: np.ndarray) -> None:
    labels, n = _components(mask)
    want, want_n = _flood_fill(mask)
    assert labels.shape == mask.shape and n == want_n
    assert ((labels > 0) == mask).all()  # background is 0, every ink pixel labelled
    assert sorted(np.unique(labels[mask]).tolist()) == list(range(1, n + 1))  # dense 1..n
    # the same partition up to numbering: the label pairs form a one-to-one map
    pairs = set(zip(labels[mask].tolist(), want[mask].tolist(), strict=True))
    assert len(pairs) == n == len({a for a, _ in pairs}) == len({b for _, b in pairs})


HAND_MADE = {
    "empty": "..... ..... .....",
    "full": "#### #### ####",
    "one pixel": "... .#. ...",
    "corner pixels": "#...# ..... #...#",
    "diagonal": "#.... .#... ..#.. ...#. ....#",
    "anti-diagonal": "....# ...#. ..#.. .#... #....",
    "checkerboard": "#.#.# .#.#. #.#.# .#.#.",
    "U: two branches merge below": "#...# #...# #...# #####",
    "W: three branches": "#.#.# #.#.# #####",
    "late merge across labels": "#.#.#.# #.#.#.# #.#.#.# #######",
    "ring": "##### #...# #.#.# #...# #####",
    "spiral": "####### ......# #####.# #...#.# #.###.# #.....# #######",
    "separate blobs": "##..## ##..## ...... ..##.. ..##..",
    "one row": "##.#..###.#",
}


@pytest.mark.parametrize("name", list(HAND_MADE))
def test_components_match_a_flood_fill_on_hand_made_masks(name):
    _assert_same_partition(_mask(HAND_MADE[name]))


def test_components_are_8_connected_not_4():
    assert _components(_mask(HAND_MADE["diagonal"]))[1] == 1  # 4-connected: 5
    assert _components(_mask(HAND_MADE["checkerboard"]))[1] == 1
    assert _components(_mask(HAND_MADE["separate blobs"]))[1] == 3
    assert _components(_mask(HAND_MADE["ring"]))[1] == 2  # the ring and the dot inside


@pytest.mark.parametrize("density", [0.1, 0.45, 0.6])
@pytest.mark.parametrize("shape", [(1, 40), (40, 1), (7, 9), (32, 32)])
def test_components_match_a_flood_fill_on_random_masks(density, shape):
    rng = np.random.default_rng(int(1000 * density) + shape[0] * 7 + shape[1])
    for _ in range(3):
        _assert_same_partition(rng.random(shape) < density)


def test_ink_box_ignores_specks_but_keeps_small_parts():
    m = np.zeros((40, 50), dtype=bool)
    m[10:30, 20:26] = True  # the digit: 120 pixels
    m[2, 2] = m[37, 45] = m[3, 44] = True  # specks, under 5% of it each
    assert _ink_box(m) == (10, 30, 20, 26)
    m[30:33, 40:43] = True  # 9 pixels, 7.5% of the digit: a part (the dot of an i)
    assert _ink_box(m) == (10, 33, 20, 43)
    assert _ink_box(np.zeros((5, 5), dtype=bool)) is None
    assert _ink_box(_mask(HAND_MADE["corner pixels"])) == (0, 3, 0, 5)  # all alike: all kept


def test_ink_box_keeps_a_line_broken_into_dots():
    # on the reduced image a faint diagonal line comes apart into pixels a pixel apart;
    # above 64 px they are labelled in 2x2 blocks, so they stay one stroke of the digit
    m = np.zeros((100, 100), dtype=bool)
    m[40:70, 10:40] = True  # 900 pixels: every dot alone is a speck beside it
    m[np.arange(10, 40, 2), np.arange(50, 80, 2)] = True
    assert _ink_box(m) == (10, 70, 10, 80)
    small = m[::2, ::2].copy()  # at 50 px, specks are specks
    small[5:20, 25:40] = False
    small[np.arange(5, 20, 2), np.arange(25, 40, 2)] = True
    assert _ink_box(small) == (20, 35, 5, 20)


# --- _otsu against skimage and a brute-force search --------------------------------------------
#
# _otsu histograms values in [0, 1] into 256 equal bins, scores every split "bins 0..k | the
# rest" by the between-class variance of the bin centres, keeps the first best k and returns
# the bin's upper edge (k + 1) / 256, so that `values > t` is exactly the upper class.
# skimage.filters.threshold_otsu scores the same splits but returns the bin's centre, and
# bins over [min, max] of the image (the same bins when the values span 0..1), or over a
# histogram it is given.


def _bin_of(values: np.ndarray) -> np.ndarray:
    return np.minimum((values * 256).astype(np.int64), 255)


def _between_class_variance(values: np.ndarray, k: int) -> float:
    centres = (_bin_of(values) + 0.5) / 256
    low, high = centres[_bin_of(values) <= k], centres[_bin_of(values) > k]
    if len(low) == 0 or len(high) == 0:
        return 0.0
    w0, w1 = len(low) / len(values), len(high) / len(values)
    return w0 * w1 * (low.mean() - high.mean()) ** 2


def _otsu_brute_force(values: np.ndarray) -> tuple[float, float]:
    """(threshold, its between-class variance), trying every split of the 256 bins."""
    best_k, best = 0, -1.0
    for k in range(256):
        var = _between_class_variance(values, k)
        if var > best:
            best_k, best = k, var
    return (best_k + 1) / 256, best


def _samples(rng, kind: str, n: int = 3000) -> np.ndarray:
    if kind == "uniform":
        v = rng.random(n)
    elif kind == "bimodal":
        v = np.concatenate([rng.normal(0.25, 0.08, 2 * n // 3), rng.normal(0.7, 0.1, n // 3)])
    elif kind == "skewed":
        v = np.concatenate([rng.beta(2, 9, n), rng.beta(9, 3, n // 8)])
    elif kind == "ink on paper":  # mostly background, a little bright ink: to_mnist's case
        v = np.concatenate([rng.exponential(0.03, 9 * n // 10), rng.normal(0.85, 0.1, n // 10)])
    elif kind == "narrow":
        v = rng.normal(0.5, 0.04, n)
    else:
        raise AssertionError(kind)
    v = np.clip(v, 0, 1)
    # put every value inside its bin, away from the edges, so no rounding can move it
    return (_bin_of(v) + rng.uniform(0.1, 0.9, v.shape)) / 256


KINDS = ["uniform", "bimodal", "skewed", "ink on paper", "narrow"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otsu_matches_a_brute_force_search(kind, seed):
    values = _samples(np.random.default_rng(seed), kind)
    want, best = _otsu_brute_force(values)
    for dtype in (np.float64, np.float32):
        got = _otsu(values.astype(dtype))
        # the split _otsu picks has the largest between-class variance there is ...
        assert _between_class_variance(values, round(got * 256) - 1) == pytest.approx(
            best, rel=1e-9, abs=1e-15
        )
        # ... and with no tie, it is the brute force's split, returned as the bin's upper edge
        assert got == want


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otsu_matches_skimage(kind, seed):
    from skimage.filters import threshold_otsu

    values = _samples(np.random.default_rng(seed), kind)
    got = _otsu(values)
    # skimage returns the centre of the same bin: half a bin below _otsu's upper edge
    hist, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    assert got == pytest.approx(threshold_otsu(hist=(hist, centres)) + 0.5 / 256, abs=1e-12)
    # on values spanning 0..1 skimage bins the image itself exactly as _otsu does
    spanning = np.concatenate([values, [0.0, 1.0]])
    assert _otsu(spanning) == pytest.approx(threshold_otsu(spanning) + 0.5 / 256, abs=1e-12)


def test_otsu_separates_two_levels():
    # every split between the two levels scores the same: the mask must still separate them
    rng = np.random.default_rng(0)
    for lo, hi in [(0.0, 1.0), (0.2, 0.8), (0.1, 0.15), (0.6, 0.9)]:
        values = np.where(rng.random(500) < 0.3, hi, lo)
        t = _otsu(values)
        assert lo < t <= hi and ((values > t) == (values == hi)).all()
