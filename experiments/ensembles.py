"""The ensembles behind docs/models.md: members, ensembles, TTA, calibration, real-world.

    python experiments/ensembles.py run      # trains what is missing into runs/ens/
    python experiments/ensembles.py report   # measures, writes the tables in docs/models.md

Everything is fixed before any figure is seen: the members are the `best` preset
at seeds 0-2 and the default recipe at seeds 0-2; the ensembles are each trio and
all six. Nothing here chooses on MNIST test or the real-world test split; they
are only reported (the real-world suite's rule: docs/handwriting.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "ens"
MEMBERS = {  # run name -> train arguments
    **{f"best-s{s}": ["--preset", "best", "--seed", str(s)] for s in range(3)},
    **{f"default-s{s}": ["--seed", str(s)] for s in range(3)},
}
ENSEMBLES = {
    "best-x3": ["best-s0", "best-s1", "best-s2"],
    "default-x3": ["default-s0", "default-s1", "default-s2"],
    "mixed-x6": [*(f"best-s{s}" for s in range(3)), *(f"default-s{s}" for s in range(3))],
}
PER_SET = 500  # real-world images per synthetic set (test split)
# TTA is 7x the work: measured for every single model and the cheap ensemble only (an
# ensemble of `best` nets with TTA takes ~10 min on the 2-core CPU)
NO_TTA = {"best-x3", "mixed-x6"}


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mnistlab", *args], check=True)


def run() -> None:
    for name, args in MEMBERS.items():
        if not (OUT / name / "best.json").is_file():
            _cli("train", *args, "--out-dir", str(OUT), "--name", name)
    for name, members in ENSEMBLES.items():
        if not (OUT / name / "best.json").is_file():
            _cli("ensemble", *(str(OUT / m) for m in members), "-o", str(OUT / name))


def _train_seconds(run: str) -> float:
    records = [json.loads(ln) for ln in (OUT / run / "metrics.jsonl").read_text().splitlines()]
    return sum(r["train_seconds"] for r in records if r["type"] == "epoch")


def _measure(path: Path, digits: np.ndarray, labels: np.ndarray, sets, tta: bool) -> dict:
    from mnistlab.serve.predict import load_predictor

    p = load_predictor(path, tta=tta)
    mnist = float((p.probs(digits).argmax(1) == labels).mean())
    real = {}
    for name, (x, ok, y) in sets.items():
        pred = np.full(len(y), -1)
        pred[ok] = p.probs(x[ok]).argmax(1)
        real[name] = float((pred == y).mean())
    return {"mnist": mnist, "real": real}


def report() -> None:
    from mnistlab.analysis.realworld import preprocess_set
    from mnistlab.data import load_split
    from mnistlab.data.realworld import realworld_sets

    x, y = load_split("mnist", "test")
    digits, labels = x[:, 0].numpy(), y.numpy()
    sets = {}
    for s in realworld_sets("test", PER_SET, 0):
        d, ok = preprocess_set(s)
        sets[s.name] = (d, ok, s.labels)
    names = [*MEMBERS, *ENSEMBLES]
    results = {}
    for name in names:
        doc = json.loads((OUT / name / "best.json").read_text())
        members = ENSEMBLES.get(name, [name])
        cache = OUT / name / "measured.json"  # what was measured already, if this was cut short
        if cache.is_file():
            results[name] = json.loads(cache.read_text())
            continue
        results[name] = {
            "plain": _measure(OUT / name, digits, labels, sets, tta=False),
            "tta": None if name in NO_TTA else _measure(OUT / name, digits, labels, sets, True),
            "calibration": doc["calibration"],
            "train_seconds": sum(_train_seconds(m) for m in members),
            "members": members,
        }
        cache.write_text(json.dumps(results[name]))
        print(name, json.dumps(results[name]["plain"]), flush=True)
    (OUT / "report.json").write_text(json.dumps(results, indent=2))
    _write_tables(results, list(sets))


def _cmd(name: str) -> str:
    if name in ENSEMBLES:
        return f"`mnistlab ensemble {' '.join(ENSEMBLES[name])} -o {name}`"
    return f"`mnistlab train {' '.join(MEMBERS[name])}`"


def _write_tables(results: dict, set_names: list[str]) -> None:
    rows = []
    for name, r in results.items():
        c = r["calibration"]
        tta = f"{r['tta']['mnist']:.2%}" if r["tta"] else "-"
        rows.append(
            f"| `{name}` | {len(r['members'])} | {r['train_seconds'] / 60:.0f} min "
            f"| {r['plain']['mnist']:.2%} | {tta} "
            f"| {c['test_ece_before']:.2%} → {c['test_ece_after']:.2%} | {c['temperature']:.2f} "
            f"| {_cmd(name)} |"
        )
    mnist = "\n".join(
        [
            "| model | members | training (sum) | MNIST test | with `--tta` | test ECE: "
            "uncalibrated → calibrated | T | command |",
            "|---|---:|---:|---:|---:|---|---:|---|",
            *rows,
        ]
    )
    rows = []
    for name, r in results.items():
        for kind in ("plain", "tta")[: 1 if r["tta"] is None else 2]:
            cells = " | ".join(f"{r[kind]['real'][s]:.1%}" for s in set_names)
            label = f"`{name}`" + (" `--tta`" if kind == "tta" else "")
            rows.append(f"| {label} | {cells} |")
    real = "\n".join(
        [
            f"| model | {' | '.join(set_names)} |",
            "|---|" + "---:|" * len(set_names),
            *rows,
        ]
    )
    checks = []
    for name, members in ENSEMBLES.items():
        worse = [
            s
            for s in set_names
            if results[name]["plain"]["real"][s]
            < max(results[m]["plain"]["real"][s] for m in members)
        ]
        checks.append(
            f"- `{name}`: "
            + (
                f"below its best member on {', '.join(worse)}"
                if worse
                else "at least as good as its best member on every set"
            )
        )
    doc = ROOT / "docs" / "models.md"
    text = doc.read_text()
    for tag, table in (
        ("ensemble-table", mnist),
        ("ensemble-realworld", real + "\n\n" + "\n".join(checks)),
    ):
        start, end = f"<!-- {tag} -->", f"<!-- /{tag} -->"
        if start in text:
            before, _, rest = text.partition(start)
            _, _, after = rest.partition(end)
            text = f"{before}{start}\n{table}\n{end}{after}"
    doc.write_text(text)
    print(mnist, real, *checks, sep="\n\n")
    best = [results[f"best-s{s}"]["plain"]["mnist"] for s in range(3)]
    print(f"best: mean {statistics.mean(best):.4%} ± {statistics.stdev(best):.4%}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("what", choices=["run", "report"])
    a = p.parse_args()
    run() if a.what == "run" else report()
