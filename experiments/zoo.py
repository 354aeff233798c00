"""Train every zoo model under its seed's recipe and write docs/models.md.

    python experiments/zoo.py run [--only NAME ...]   # trains what is missing, resumable
    python experiments/zoo.py report                   # rebuilds docs/models.md from runs/zoo

Each job is a plain `mnistlab train` command; its run folder is runs/zoo/<job>-s<seed>.
A finished run is skipped, so an interrupted sweep can simply be started again.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from mnistlab import create_model
from mnistlab.analysis.summary import count_flops
from mnistlab.models import count_params

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "zoo"

# (job, model, train args, seeds, the seed's reported figure)
JOBS = [
    (
        "softmax",
        "softmax",
        "--preset seed000-compare --model softmax",
        (0, 1),
        "~88% (LeCun 1998: 12% error)",
    ),
    (
        "linear",
        "linear",
        "--preset seed000-compare --model linear",
        (0, 1),
        "planned in seed 000, no figure",
    ),
    ("mlp", "mlp", "--preset seed002-mlp-mse", (0, 1), "83.8% (measured on the training set)"),
    (
        "mlp-small",
        "mlp-small",
        "--preset seed001-lenet5 --model mlp-small",
        (0, 1),
        "compared on size only",
    ),
    ("cnn", "cnn", "--preset seed000-cnn", (0, 1, 2, 3, 4), "99.0% after 10 epochs"),
    (
        "inception",
        "inception",
        "--preset seed000-compare --model inception",
        (0,),
        "planned in seed 000, no figure",
    ),
    (
        "resnet",
        "resnet",
        "--preset seed000-compare --model resnet",
        (0,),
        "planned in seed 000, no figure",
    ),
    (
        "lenet5-3000",
        "lenet5",
        "--preset seed001-lenet5 --train-subset 3000",
        (0, 1),
        "94-96% on 3,000 images",
    ),
    ("lenet5", "lenet5", "--preset seed001-lenet5", (0,), "(full training set; seed used 3,000)"),
    ("lenet", "lenet", "--preset seed004-lenet", (0, 1), "97.9% after 8 epochs"),
    ("lenet-bn", "lenet-bn", "--preset seed004-lenet-bn", (0, 1), "98.7% after 8 epochs"),
    (
        "pytorch-example",
        "pytorch-example",
        "--preset seed003-example",
        (0,),
        "~99.2% after 14 epochs",
    ),
    ("fast", "fast", "--preset fast", (0, 1, 2, 3, 4), "ours: 99% in one epoch"),
    ("best", "best", "--preset best", (0, 1, 2), "goal ≥ 99.70%"),
]


def mflops(name: str) -> float:
    """Forward FLOPs per image (a multiply-add counts 2), as `mnistlab summary` counts them."""
    return count_flops(create_model(name)) / 1e6


def _run_folder_done(run_dir: Path) -> bool:
    last = run_dir / "last.json"
    return last.is_file() and json.loads(last.read_text())["resume"]["done"]


def run(only: list[str]) -> None:
    for job, _model, args, seeds, _ in JOBS:
        if only and job not in only:
            continue
        for seed in seeds:
            name = f"{job}-s{seed}"
            last = OUT / name / "last.json"
            if _run_folder_done(OUT / name):
                continue
            resume = ["--resume", str(OUT / name)] if last.is_file() else None
            cmd = [sys.executable, "-m", "mnistlab", "train"]
            cmd += resume or [
                *shlex.split(args),
                "--seed",
                str(seed),
                "--out-dir",
                str(OUT),
                "--name",
                name,
            ]
            print("$", shlex.join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True)


def report() -> None:
    rows = []
    for job, model, args, seeds, seed_fig in JOBS:
        accs, secs, unfinished = [], [], []
        for seed in seeds:
            best = OUT / f"{job}-s{seed}" / "best.json"
            if best.is_file() and not _run_folder_done(best.parent):
                resume = json.loads((best.parent / "last.json").read_text())["resume"]
                unfinished.append(f"seed {seed} stopped at epoch {resume['epoch']}")
            elif best.is_file():
                m = json.loads(best.read_text())["metrics"]
                hist = [
                    json.loads(ln)
                    for ln in (best.parent / "metrics.jsonl").read_text().splitlines()
                ]
                accs.append(100 * m["test_acc"])
                secs.append(sum(r["train_seconds"] for r in hist if r["type"] == "epoch"))
        if not accs:
            acc = f"not finished ({'; '.join(unfinished)})" if unfinished else "not run yet"
        elif len(accs) == 1:
            acc = f"{accs[0]:.2f}% (1 seed)"
        else:
            acc = f"{statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f}% ({len(accs)} seeds)"
        time_s = f"{statistics.median(secs):.0f} s" if secs else "-"
        cmd = f"`mnistlab train {args}`"
        rows.append(
            f"| `{model}` | {count_params(create_model(model)):,} | {mflops(model):.2f} | {seed_fig} "
            f"| {acc} | {time_s} | {cmd} |"
        )
    header = (
        "| model | parameters | MFLOPs/image | seed's figure | our test accuracy | train time | command |\n"
        "|---|---:|---:|---|---|---:|---|"
    )
    text = (ROOT / "docs" / "models.md").read_text()
    start, end = "<!-- zoo-table -->", "<!-- /zoo-table -->"
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    table = "\n".join([header, *rows])
    (ROOT / "docs" / "models.md").write_text(f"{before}{start}\n{table}\n{end}{after}")
    print(table)


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("what", choices=["run", "report"])
    p.add_argument("--only", nargs="*", default=[])
    a = p.parse_args()
    run(a.only) if a.what == "run" else report()
