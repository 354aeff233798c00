"""How well `read_number` reads rows of digits: a seeded generator, not a test.

    python benchmarks/read_numbers.py RUN [--per-cell 100] [--seed 0]

Numbers of 2 to 8 digits are composed from MNIST **test** digits only, laid out as
people write them: gaps that vary (apart, touching, slightly overlapping),
baseline jitter, size variation and slant, canvases of several sizes, dark ink on
light paper or the reverse. Reports number accuracy (every digit right) and digit
accuracy (by position, where the count is right) per length and gap type, and the
median time to read a 5-digit image; the table goes to benchmarks/numbers.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mnistlab.data import load_split
from mnistlab.serve.numbers import read_number
from mnistlab.serve.predict import load_predictor

ROOT = Path(__file__).resolve().parents[1]
GAPS = {"apart": (4, 12), "touching": (0, 0), "overlap": (-3, -1)}  # px at 28 px high
LENGTHS = (2, 3, 5, 8)


def _digit(a: np.ndarray, rng) -> np.ndarray:
    """One MNIST digit, cropped to its ink, scaled 0.85-1.15 and slanted ±10 degrees."""
    img = Image.fromarray(a)
    shear = np.tan(np.radians(rng.uniform(-10, 10)))
    img = img.transform((28, 28), Image.AFFINE, (1, shear, -14 * shear, 0, 1, 0), Image.BILINEAR)
    s = rng.uniform(0.85, 1.15)
    img = img.resize((round(28 * s), round(28 * s)), Image.BILINEAR)
    d = np.asarray(img)
    cols = np.flatnonzero(d.max(0) > 30)
    return d[:, cols[0] : cols[-1] + 1] if len(cols) else d


def compose(digits: list[np.ndarray], gap: str, rng) -> Image.Image:
    """A row of ``digits`` (uint8 28x28, white on black) as a user's image."""
    parts = [_digit(a, rng) for a in digits]
    lo, hi = GAPS[gap]
    gaps = [int(rng.integers(lo, hi + 1)) for _ in parts[1:]]
    width = sum(p.shape[1] for p in parts) + sum(gaps) + 24
    canvas = np.zeros((52, width), np.uint8)
    x = 12
    for i, p in enumerate(parts):
        y = 12 + int(rng.integers(-3, 4)) + (34 - p.shape[0]) // 2  # baseline jitter
        y = min(max(y, 0), 52 - p.shape[0])
        region = canvas[y : y + p.shape[0], x : x + p.shape[1]]
        np.maximum(region, p, out=region)
        x += p.shape[1] + (gaps[i] if i < len(gaps) else 0)
    k = rng.uniform(2.0, 6.0)  # canvases of several sizes
    img = Image.fromarray(canvas).resize((round(width * k), round(52 * k)), Image.BILINEAR)
    if rng.random() < 0.5:  # dark ink on light paper, as most users have it
        img = Image.eval(img, lambda v: 255 - v)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--per-cell", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    x, y = load_split("mnist", "test")
    x, y = x[:, 0].numpy(), y.numpy()
    predictor = load_predictor(args.run)
    rng = np.random.default_rng(args.seed)
    lines = [
        f"Run `{args.run}`, seed {args.seed}, {args.per_cell} numbers per cell.",
        "",
        "| gap | digits | numbers exact | digits right |",
        "|---|---:|---:|---:|",
    ]
    times = []
    for gap in GAPS:
        for n in LENGTHS:
            exact = right = total = 0
            for _ in range(args.per_cell):
                idx = rng.choice(len(x), n, replace=False)
                truth = "".join(str(y[i]) for i in idx)
                img = compose([x[i] for i in idx], gap, rng)
                t = time.perf_counter()
                got = read_number(predictor, img).number
                if n == 5:
                    times.append(time.perf_counter() - t)
                exact += got == truth
                total += n
                if len(got) == n:
                    right += sum(a == b for a, b in zip(got, truth, strict=True))
            lines.append(
                f"| {gap} | {n} | {100 * exact / args.per_cell:.1f}% | {100 * right / total:.1f}% |"
            )
            print(lines[-1], flush=True)
    lines += ["", f"Median time to read a 5-digit image: {1000 * statistics.median(times):.1f} ms."]
    print(lines[-1])
    (ROOT / "benchmarks" / "numbers.md").write_text("# read_number\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
