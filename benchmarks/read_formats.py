"""Formatted numbers (phone, price, thousands, dates, time, plain) read back as text.

    python benchmarks/read_formats.py RUN [--per-format 50] [--seed 0]

Rows are written by ``mnistlab.data.number_rows`` from MNIST **test** digits, standing
apart, with drawn separators and spaces, and read by ``read_number``
(``mnistlab.serve.number_score.score_rows``). Prints a markdown table: the share of rows
whose whole text is exact, whose separators and spaces are right (digits masked), and
of digits right, and the ceiling: rows whose every digit the model reads right as MNIST
gives it (28x28, no row), what the classifier alone allows.
"""

from __future__ import annotations

import argparse
import time

from mnistlab.data import load_split
from mnistlab.serve.number_score import score_rows
from mnistlab.serve.predict import load_predictor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--per-format", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    x, y = load_split("mnist", "test")
    t = time.process_time()
    scores = score_rows(
        load_predictor(args.run), args.per_format, x[:, 0].numpy(), y.numpy(), args.seed
    )
    cpu = time.process_time() - t
    print(f"Run `{args.run}`, seed {args.seed}, {args.per_format} rows per format.\n")
    print("| format | text exact | separators and spaces | digits right | ceiling |")
    print("|---|---:|---:|---:|---:|")
    rows = 0
    for name, s in scores.items():
        rows += s["rows"]
        print(
            f"| {name} | {s['exact']:.1%} | {s['layout']:.1%} | {s['digits']:.1%} "
            f"| {s['ceiling']:.1%} |"
        )
    mean = sum(s["exact"] * s["rows"] for s in scores.values()) / rows
    ceiling = sum(s["ceiling"] * s["rows"] for s in scores.values()) / rows
    print(f"| all | {mean:.1%} | | | {ceiling:.1%} |")
    print(f"\n{rows} rows in {cpu:.1f} s of CPU ({1000 * cpu / rows:.1f} ms a row).")


if __name__ == "__main__":
    main()
