"""Digits that fill their frame: how many ``to_mnist`` calls blank, and how well a model
reads them beside the same digits with a margin. A seeded generator, not a test.

    python benchmarks/frame_filling.py RUN [--n 2000] [--preprocess FILE]

MNIST **test** digits are made bold (a grey dilation by a disk of 0-3 px at 28 px scale
on the digit enlarged 4x, or by a square at 28 px), cropped to their ink
with no margin, and rendered as scans and photos of such digits are: the aspect kept, or
stretched to fill a square as the Semeion (16x16, binary) and USPS (16x16, grey) sets
are; 16-200 px; dark ink on white or white on black; some with noise and JPEG. Each is
also rendered with a margin (a quarter of its longer side of paper all round, the digit
the same pixels): the reference. ``--preprocess`` loads another version of
``serve/preprocess.py`` in its place (``git show REV:src/mnistlab/serve/preprocess.py``),
to measure before and after on the same images.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time

import numpy as np
import torch
from PIL import Image

from mnistlab import load_checkpoint
from mnistlab.analysis.evaluate import predict_probs
from mnistlab.data import bold_digits, load_arrays
from mnistlab.serve import preprocess
from mnistlab.serve.preprocess import PreprocessError

# name: (stretched to a square, side px, dark ink, binary, noise sd, JPEG quality)
VARIANTS = {
    "kept 28 dark": (False, 28, True, False, 0, None),
    "kept 200 light": (False, 200, False, False, 0, None),
    "kept 64 dark, noise+JPEG": (False, 64, True, False, 8, 75),
    "square 16 binary dark (Semeion)": (True, 16, True, True, 0, None),
    "square 16 grey light (USPS)": (True, 16, False, False, 0, None),
    "square 28 dark": (True, 28, True, False, 0, None),
    "square 64 dark, noise+JPEG": (True, 64, True, False, 8, 75),
    "square 200 light, JPEG": (True, 200, False, False, 0, 60),
}
BOLD = ("0 px", "1 px", "2 px", "3 px", "2 px square", "3 px square")  # added all round


def bold_crop(a: np.ndarray, bold: str) -> np.ndarray:
    """A 28x28 MNIST digit made bolder as ``bold`` says ("N px": a disk of N px at 28 px
    scale on the digit enlarged 4x; "N px square": a (2N+1)-square at 28 px), cut to its
    ink's box (``data/bold_digits.py``)."""
    return bold_digits.cropped(
        bold_digits.bold(a, int(bold.split()[0]), square=bold.endswith("square"))
    )


def render(c, variant, margin: bool, rng) -> Image.Image:
    """``c`` (white ink on black) as ``variant`` says, with or without a margin."""
    square, side, dark, binary, noise, jpeg = variant
    return bold_digits.render(c, side, dark, square, margin, noise, jpeg, rng, binary)


def _module(path: str | None):
    if path is None:
        return preprocess
    spec = importlib.util.spec_from_file_location("mnistlab.serve._other_preprocess", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a trained run folder (best checkpoint)")
    ap.add_argument("--n", type=int, default=2000, help="MNIST test digits (default 2000)")
    ap.add_argument("--preprocess", help="another serve/preprocess.py to measure instead")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = load_checkpoint(args.run)[0]
    pre = _module(args.preprocess)
    x, y = load_arrays("mnist", "test")
    x, y = x[: args.n], y[: args.n]

    def read(img):
        try:
            return pre.to_mnist(img), False
        except PreprocessError as e:
            if "no ink" not in str(e):
                raise
            return np.zeros((28, 28), np.uint8), True

    def accuracy(read_out) -> float:
        """Right answers among all images: one called blank is not read (the model would
        call a black image a 1, and most digits called blank were bold 1s)."""
        t = torch.from_numpy(np.stack([a for a, _ in read_out])).unsqueeze(1)
        pred = predict_probs(model, t, model.meta.mean, model.meta.std).argmax(1).numpy()
        return float(((pred == y) & ~np.array([b for _, b in read_out])).mean())

    print("| bold | rendered | blank, no margin | blank, margin | accuracy, no margin | margin |")
    print("|---|---|---|---|---|---|")
    totals = np.zeros(4)
    start = time.perf_counter()
    for i, bold in enumerate(BOLD):
        crops = [bold_crop(a, bold) for a in x]
        for name, variant in VARIANTS.items():
            rng = np.random.default_rng(i * 100 + len(name))
            tight = [read(render(c, variant, False, rng)) for c in crops]
            framed = [read(render(c, variant, True, rng)) for c in crops]
            row = [sum(b for _, b in tight), sum(b for _, b in framed)]
            row += [accuracy(tight), accuracy(framed)]
            totals += row
            print(f"| {bold} | {name} | {row[0]} | {row[1]} | {row[2]:.2%} | {row[3]:.2%} |")
            sys.stdout.flush()
    k = len(BOLD) * len(VARIANTS)
    print(
        f"| all | {k} x {args.n} images | {int(totals[0])} | {int(totals[1])} "
        f"| {totals[2] / k:.2%} | {totals[3] / k:.2%} |"
    )
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
