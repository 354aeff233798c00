"""What lies between the digits of a row: separators, spaces, and rows that are no row.

Everything here is measured against the row itself: ``H``, the height of the digits
beside a mark (the median of up to two digit-sized marks on each side), their top and
their baseline (medians too), so a sloping or jittered row keeps its own local lines.

- **separators** (``find_separators``: vectorised, then at most ``MAX_CANDIDATES``
  marks looked at one by one). A candidate is a mark under 75% of a digit's height and
  over ``TINY`` of its area, in the row's band, at most ``UNDER`` of its width under a
  digit's box, standing ``CLEAR`` of H or more from the digit boxes on both sides (the
  generator and people leave such a gap; a broken digit's pieces touch their digit),
  with digits on both sides (a dash, a minus sign, may lead). It is a *dash* if flat
  (at least 1.6x as wide as high, 15-120% of H long), its centre 20-80% of H above the
  baseline; a *point* if a small round blob (both sides at most 35% of H, aspect 0.5-2,
  filling 40% of its box) centred at most 30% of H above the baseline, ending at most
  15% of H under it; a *comma* if at least 1.3x as tall as wide, at most 70% of H high
  and 35% wide, centred at most 25% of H above the baseline and reaching 10% of H under
  it (its tail may come back to the digit before it); a *colon* if two dots sit one
  above the other, the lower on the baseline, the upper 30-90% of H up. Three or more
  marks in one column spanning half of H (or two not both dots) are a digit in pieces,
  never separators. Anything else small is noise, dropped as before.
- **slash** (``is_slash``): a mark at least 60% of the row's height, thin (its principal
  axes at least ``SLASH_THIN`` to 1) and leaning right at least ``SLASH_DEG`` from
  vertical (the principal axes of ``skimage.measure.regionprops``). Of MNIST's test
  1s, rendered alone, 1.15% pass both (0.44% at 40 degrees): a slash steeper than 38
  degrees from vertical is read as a 1, and a 1 leaning further, thin, as a slash.
- **spaces** (``spaces``): a gap wider than the median gap between neighbouring digits
  by ``SPACE`` of the digits' height (and at least twice that median) separates groups:
  evenly spaced digits, however wide apart, get none.
- **rows that are no row** (``row_problem``): the digit-sized marks fall into horizontal
  bands with clear gaps between them. Two bands or more, one of them holding marks side
  by side: two rows. One column of bands, each one mark, the marks wider than tall (a
  digit on its side): the row runs top to bottom.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "KINDS",
    "MAX_CANDIDATES",
    "NOT_DIGITS",
    "SIDEWAYS",
    "SLASH_DEG",
    "TINY",
    "TWO_ROWS",
    "find_separators",
    "is_slash",
    "row_problem",
    "spaces",
    "written",
]

KINDS = {"dash": "-", "point": ".", "comma": ",", "slash": "/", "colon": ":"}
CLEAR = 0.08  # a separator's gap to the digits on both sides, at least, in H
UNDER = 0.25  # a mark more than this share of its width under a digit's box is part of it
TINY = 0.01  # marks under this share of a digit's (median) area are noise, wherever they lie
MAX_CANDIDATES = 128  # more small marks in the gaps than this: a speckled image, no separators
SLASH_DEG = 38.0  # a slash leans right at least this far from vertical
SLASH_THIN = 8.0  # ... and its principal axes are at least this many to one
SPACE = 0.5  # a space: a gap this much of the digits' height wider than their median gap
SIDEWAYS = "the digits run top to bottom: turn the image so the row runs left to right"
TWO_ROWS = "two rows: crop to one row"
NOT_DIGITS = "mostly not digits"


def _runs(x0: np.ndarray, x1: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Runs of marks overlapping in x, per band (``band``: 0..B-1 per mark): ``(B,)``."""
    span = int(max(x1.max(), 1)) + 1
    a0, a1 = x0 + band * span, x1 + band * span  # bands far apart: runs never cross them
    order = np.argsort(a0, kind="stable")
    reach = np.maximum.accumulate(a1[order])
    start = np.r_[True, a0[order][1:] >= reach[:-1]]
    return np.bincount(band[order][start], minlength=int(band.max()) + 1)


def row_problem(x0, x1, y0, y1) -> str | None:
    """Why the digit-sized marks (boxes, stop exclusive) are no single row; None if they
    are one. Arrays only: the marks are not looked at one by one."""
    if len(x0) < 2:
        return None
    order = np.argsort(y0, kind="stable")
    reach = np.maximum.accumulate(y1[order])
    band = np.empty(len(y0), np.intp)
    band[order] = np.cumsum(np.r_[False, y0[order][1:] >= reach[:-1]])
    bands = int(band.max()) + 1
    if bands < 2:
        return None
    runs = _runs(x0, x1, band)
    if (runs >= 2).any():
        return TWO_ROWS
    if _runs(x0, x1, np.zeros_like(band))[0] != 1:  # bands not in one column: a diagonal
        return None
    wide = (x1 - x0) >= np.where(bands >= 3, 0.9, 1.2) * (y1 - y0)
    if (bands >= 3 and wide.sum() >= 2) or (bands == 2 and len(x0) == 2 and wide.all()):
        return SIDEWAYS
    return None


def _local(c, x0, x1, y0, y1, tall) -> tuple[np.ndarray, ...]:
    """For each candidate ``c``: the row's (top, baseline) there, medians over the two
    digit-sized marks (``tall``) on each side; and its gaps to the nearest one on the
    left and on the right (``inf`` where there is none), in px."""
    order = tall[np.argsort(x0[tall] + x1[tall], kind="stable")]
    centres, cx = (x0[order] + x1[order]) / 2, (x0[c] + x1[c]) / 2
    # a candidate may be a tall mark itself (a long comma): its own place is skipped
    lo, hi = np.searchsorted(centres, cx, "left"), np.searchsorted(centres, cx, "right")
    near = np.stack([lo - 2, lo - 1, hi, hi + 1], axis=1)
    near = order[np.clip(near, 0, len(order) - 1)]
    left, right = near[:, 1], near[:, 2]
    left_gap = np.where(lo > 0, x0[c] - x1[left], np.inf)
    right_gap = np.where(hi < len(order), x0[right] - x1[c], np.inf)
    return np.median(y0[near], axis=1), np.median(y1[near], axis=1), left_gap, right_gap


def find_separators(marks, candidates: np.ndarray, tall: np.ndarray, width: int) -> list:
    """``[(kind, [mark indices]), ...]``: the separators among ``candidates`` (indices
    of marks smaller than a digit); pieces of a broken digit in a gap are none.
    ``marks``: (areas, x0, x1, y0, y1) of every mark; ``tall``: indices of the marks at
    least half a digit high (candidates among them too); ``width``: the image's."""
    if not len(candidates) or not len(tall):
        return []
    area, x0, x1, y0, y1 = marks
    # how many of the tall marks' boxes cover each column: a candidate more than UNDER
    # of its width under another's box is part of that digit (its own box not counted)
    edge = np.zeros(width + 1, np.int64)
    np.add.at(edge, x0[tall], 1)
    np.add.at(edge, x1[tall], -1)
    boxes = np.cumsum(edge)[:width]
    c = candidates
    own = np.isin(c, tall)  # the candidate's own box is counted
    covered = [np.r_[0, np.cumsum(boxes > k)] for k in (0, 1)]
    under = np.where(own, *(cov[x1[c]] - cov[x0[c]] for cov in covered[::-1])) / (x1[c] - x0[c])
    top, base, left, right = _local(c, x0, x1, y0, y1, tall)
    h = base - top
    cy = (y0[c] + y1[c]) / 2
    inside = (under <= UNDER) & (cy >= top - 0.2 * h) & (cy <= base + 0.5 * h)
    if np.count_nonzero(inside) > MAX_CANDIDATES:
        return []  # specks everywhere: no one of them can be told from the others
    c, base, h, left, right = (a[inside] for a in (c, base, h, left, right))
    w, hh = (x1[c] - x0[c]).astype(float), (y1[c] - y0[c]).astype(float)
    fill = area[c] / (w * hh)
    dot = (w <= 0.35 * h) & (hh <= 0.35 * h) & (w <= 2 * hh) & (hh <= 2 * w) & (fill >= 0.4)
    broken = np.isin(c, _broken(c, dot, x0, x1, y0, y1, h))
    up = (base - (y0[c] + y1[c]) / 2) / h  # the centre's height over the baseline, in H
    below = (y1[c] - base) / h  # how far it reaches under the baseline, in H
    # standing apart from the digits on both sides, as digits stand apart from each other
    clear = (np.minimum(left, right) >= CLEAR * h) & ~broken
    between = np.isfinite(left) & np.isfinite(right)
    found, used = [], set()
    dots = np.flatnonzero(dot & clear & between)
    for k, i in enumerate(dots):  # colons first: a colon's lower dot alone would be a point
        for j in dots[k + 1 :]:
            lo, hi = (i, j) if up[i] < up[j] else (j, i)
            across = min(x1[c[i]], x1[c[j]]) - max(x0[c[i]], x0[c[j]])
            if i in used or j in used or across < 0.5 * min(w[i], w[j]):
                continue
            if up[hi] - up[lo] >= 0.25 and up[lo] <= 0.3 and 0.3 <= up[hi] <= 0.9:
                found.append(("colon", [int(c[lo]), int(c[hi])]))
                used |= {i, j}
    flat = (hh <= 0.3 * h) & (w >= 1.6 * hh) & (w >= 0.15 * h) & (w <= 1.2 * h)
    dash = flat & clear & np.isfinite(right) & (up >= 0.2) & (up <= 0.8)  # a minus may lead
    point = dot & clear & between & (up <= 0.3) & (below <= 0.15)
    # a comma's tail may reach back under the digit before it, not the one after
    comma = (hh >= 1.3 * w) & (hh <= 0.7 * h) & (w <= 0.35 * h) & (below >= 0.1) & (up <= 0.25)
    comma &= between & ~broken & (left >= 0) & (right >= CLEAR * h)
    for i in range(len(c)):
        kind = "dash" if dash[i] else "point" if point[i] else "comma" if comma[i] else None
        if kind and i not in used:
            found.append((kind, [int(c[i])]))
    return found


def _broken(c: np.ndarray, dot: np.ndarray, x0, x1, y0, y1, h: np.ndarray) -> list[int]:
    """The marks ``c`` (in a gap between digits) that stand in a column, overlapping in
    x, three or more, or two that are not both dots (a colon), spanning at least half the
    row's height: a digit in pieces (a dotted 1), not separators."""
    order = np.argsort(x0[c], kind="stable")
    out, run = [], []
    for k in [*order.tolist(), None]:
        if k is not None and run and x0[c[k]] < max(x1[c[j]] for j in run):
            run.append(k)
            continue
        if len(run) >= 3 or (len(run) == 2 and not dot[run].all()):
            span = max(y1[c[j]] for j in run) - min(y0[c[j]] for j in run)
            if span >= 0.5 * h[run[0]]:
                out += [int(c[j]) for j in run]
        run = [] if k is None else [k]
    return out


def is_slash(mask: np.ndarray, height: float) -> bool:
    """Whether one mark's ``mask`` (cut to its box) is a slash in a row of digits
    ``height`` high: tall, thin and leaning right (top to the right)."""
    h, w = mask.shape
    # a line leaning SLASH_DEG is tan(SLASH_DEG) as wide as high: a cheap test first
    if h < 0.6 * height or w < 0.8 * np.tan(np.radians(SLASH_DEG)) * h:
        return False
    # the principal axes of its pixels: skimage.measure.regionprops' orientation and
    # axis lengths (the same to 1e-13 on 2,000 MNIST digits), in a tenth of the time
    ys, xs = np.nonzero(mask)
    xc, yc = xs - xs.mean(), ys - ys.mean()
    a, b, c = (xc * xc).mean(), (xc * yc).mean(), (yc * yc).mean()  # the covariance
    half = np.hypot((a - c) / 2, b)
    major, minor = (a + c) / 2 + half, (a + c) / 2 - half  # its eigenvalues
    thin = major >= SLASH_THIN**2 * max(minor, 1e-12)  # axes SLASH_THIN to 1, or more
    # the major axis's angle from vertical, positive where its top leans right (y down)
    lean = np.degrees(np.arctan2(-2 * b, c - a)) / 2
    return bool(thin and lean >= SLASH_DEG)


def spaces(boxes: list[tuple[int, int, int, int]], digit: list[bool], height: float) -> list:
    """``[bool]`` per gap between neighbouring items (boxes left to right, x0 y0 x1 y1):
    whether it is a space. ``digit``: which items are digits (their gaps set the norm)."""
    gaps = [b[0] - a[2] for a, b in itertools.pairwise(boxes)]
    norm = [g for g, a, b in zip(gaps, digit, digit[1:], strict=False) if a and b]
    if len(norm) < 2:  # one gap between digits has nothing to be wider than
        return [False] * len(gaps)
    median = max(float(np.median(norm)), 0.0)
    return [g > max(median + SPACE * height, 2 * median) for g in gaps]


def written(items: list, height: float) -> str:
    """The row as written: ``items`` are (box x0 y0 x1 y1, text, is a digit) of every
    mark, in any order; a skipped mark's text is "" but its place still counts."""
    items = sorted(items, key=lambda it: it[0][0] + it[0][2])  # by the centre
    gaps = spaces([b for b, _, _ in items], [d for _, _, d in items], height)
    text = items[0][1] + "".join(
        (" " if gap else "") + t for gap, (_, t, _) in zip(gaps, items[1:], strict=True)
    )
    return " ".join(text.split())  # no space twice over, none at the ends
