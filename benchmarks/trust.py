"""How far to trust an answer: the reject option measured (docs/trust.md).

    python benchmarks/trust.py RUN [--out docs/trust.md] [--json benchmarks/trust.json] [--quick]

RUN must carry a reject threshold (``mnistlab calibrate RUN`` fits one on validation
data: MNIST's validation split and ``outlier_images("val")``). Everything here is
measured in this run, with that stored threshold, on the CPU named in the output:

1. Rejection: AUROC of the digit score (MNIST test digits against each non-digit set,
   Mann-Whitney) and the share answered "not a digit" for the validation outliers
   (glyphs, shapes), uniform and Gaussian noise and Fashion-MNIST test; for MNIST test
   and the real-world dev and test sets (through ``to_mnist``, as ``predict`` does):
   the share rejected, accuracy counting a rejected digit as wrong, accuracy on the kept.
2. Formatted numbers (``serve/number_score.score_rows``, where it exists).
3. Cost: ``mnistlab predict RUN FOLDER --json`` per image (and ``--accept-all``), and
   ``Predictor.judge`` against ``Predictor.probs`` in process.
4. How the score and threshold were chosen, and what outlier exposure costs in
   training: ``experiments/reject.json`` and ``experiments/reject_training.json``.

The numbers go to the JSON, the Markdown (``trust_report.py``, which can also
render the JSON again alone) to ``--out``.

``--quick``: fewer images everywhere (for tests and development).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mnistlab._io import atomic_write_json
from mnistlab.data import load_split
from mnistlab.data.outliers import outlier_images, outlier_kinds
from mnistlab.data.realworld import realworld_sets
from mnistlab.errors import MnistlabError
from mnistlab.models._reject import digit_scores, is_digit
from mnistlab.serve.predict import load_predictor
from mnistlab.serve.preprocess import to_mnist

sys.path.insert(0, str(Path(__file__).parent))
import trust_report  # beside this script

ROOT = Path(__file__).resolve().parents[1]
FULL = {"test": 10_000, "noise": 1000, "fashion": 10_000, "real": 500, "rows": 100,
        "files": 2000, "cli_repeat": 3, "judge": 2000, "judge_repeat": 5}  # fmt: skip
QUICK = {"test": 1000, "noise": 200, "fashion": 1000, "real": 40, "rows": 5,
         "files": 100, "cli_repeat": 1, "judge": 500, "judge_repeat": 3}  # fmt: skip


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties half: the Mann-Whitney U."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def noise(kind: str, n: int) -> np.ndarray:
    """``(n, 28, 28)`` uint8: uniform 0-255, or Gaussian (mean 64, sd 64) clipped."""
    rng = np.random.default_rng(3 if kind == "uniform" else 4)
    if kind == "uniform":
        return np.uint8(rng.integers(0, 256, (n, 28, 28)))
    return np.uint8(np.clip(rng.normal(64, 64, (n, 28, 28)), 0, 255))


def rejection(predictor, size: dict) -> dict:
    """The non-digit and digit rows of section 1 (shares as fractions)."""
    x, y = load_split("mnist", "test")
    x, y = x[: size["test"], 0].numpy(), y[: size["test"]].numpy()
    _, test_scores, _ = predictor.judge(x)
    outliers, kinds = outlier_images("val"), outlier_kinds("val")
    _, out_scores, out_ok = predictor.judge(outliers)
    others = {
        "validation outliers: glyphs": (out_scores[kinds == "glyph"], out_ok[kinds == "glyph"]),
        "validation outliers: shapes": (out_scores[kinds == "shape"], out_ok[kinds == "shape"]),
        "validation outliers: all": (out_scores, out_ok),
    }
    for kind in ("uniform", "gaussian"):
        others[f"{kind} noise"] = predictor.judge(noise(kind, size["noise"]))[1:]
    try:
        fx, _ = load_split("fashion-mnist", "test")
        others["Fashion-MNIST test"] = predictor.judge(fx[: size["fashion"], 0].numpy())[1:]
        fashion = "installed"
    except MnistlabError as e:  # not there: said, never fatal (mnistlab downloads nothing)
        fashion = (
            "not installed (`apt-get install dataset-fashion-mnist` puts it in "
            "/usr/share/datasets/fashion-mnist, where mnistlab looks)"
        )
        print(f"Fashion-MNIST: {e}", file=sys.stderr)
    nondigits = [
        {"set": name, "n": len(s), "auroc": auroc(test_scores, s), "rejected": float(1 - ok.mean())}
        for name, (s, ok) in others.items()
    ]
    digits = [_digit_row("MNIST test", "test", predictor, x, y, out_scores)]
    for split in ("dev", "test"):
        for s in realworld_sets(split, n=size["real"]):
            images = np.stack([to_mnist(im) for im in s.images])
            digits.append(_digit_row(s.name, split, predictor, images, s.labels, out_scores))
    return {"fashion_mnist": fashion, "nondigits": nondigits, "digits": digits}


def _digit_row(name, split, predictor, images, labels, out_scores) -> dict:
    probs, scores, ok = predictor.judge(images)
    right = probs.argmax(1) == labels
    return {
        "set": name,
        "split": split,
        "n": len(labels),
        "rejected": float(1 - ok.mean()),
        "acc_all": float(right.mean()),  # accepting every answer (`--accept-all`)
        "acc_rejected_wrong": float((right & ok).mean()),
        "acc_kept": float(right[ok].mean()) if ok.any() else None,
        "auroc_vs_outliers": auroc(scores, out_scores),
    }


def numbers(predictor, size: dict) -> dict:
    """Section 2: ``score_rows``'s ``{format: {"rows", "exact", "layout", "digits"}}``
    on MNIST test digits, the pattern of each format, or why it is missing."""
    try:
        from mnistlab.data.number_rows import FORMATS
        from mnistlab.serve.number_score import score_rows
    except ImportError:
        return {"missing": "`mnistlab.serve.number_score.score_rows` is not there"}
    x, y = load_split("mnist", "test")
    rows = score_rows(predictor, size["rows"], x[:, 0].numpy(), y.numpy(), 0)
    return {"n_per_format": size["rows"], "rows": rows, "patterns": FORMATS}


def _cli_seconds(run: str, folder: Path, extra: list[str]) -> tuple[float, list]:
    cmd = [sys.executable, "-m", "mnistlab", "predict", run, str(folder), "--json", *extra]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")
    return took, json.loads(proc.stdout)


def cost(run: str, predictor, size: dict) -> dict:
    """Section 3: the CLI per image (start-up subtracted) and judge vs probs in process."""
    x, y = load_split("mnist", "test")
    x, y = x[: size["files"], 0].numpy(), y[: size["files"]].numpy()
    cli = {
        "files": len(y),
        "repeat": size["cli_repeat"],
        "images": "MNIST test digits saved as MNIST has them, white on black",
    }
    with tempfile.TemporaryDirectory(prefix="trust-") as tmp:
        many, one = Path(tmp, "many"), Path(tmp, "one")
        many.mkdir(), one.mkdir()
        for i, a in enumerate(x):
            Image.fromarray(a).save(many / f"{i:05d}.png")
        Image.fromarray(x[0]).save(one / "00000.png")
        for mode, extra in (("default", []), ("accept_all", ["--accept-all"])):
            runs_many, runs_one = [], []
            for _ in range(size["cli_repeat"]):  # interleaved: load drifts hit both alike
                runs_one.append(_cli_seconds(run, one, extra)[0])
                took, out = _cli_seconds(run, many, extra)
                runs_many.append(took)
            many_s, one_s = statistics.median(runs_many), statistics.median(runs_one)
            cli[mode] = {
                "seconds_many": runs_many,
                "seconds_one": runs_one,
                "ms_per_image": 1000 * (many_s - one_s) / (len(y) - 1),
                "not_digit": sum(r["not_digit"] for r in out),
                "right": sum(r["label"] == str(t) for r, t in zip(out, y, strict=True)),
            }
    x = load_split("mnist", "test")[0][: size["judge"], 0].numpy()
    predictor.judge(x), predictor.probs(x)  # warm up
    times = {"judge": [], "probs": []}
    for _ in range(size["judge_repeat"]):
        for name in times:
            t = time.perf_counter()
            getattr(predictor, name)(x)
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    probs, own = predictor.probs(x), []
    for _ in range(100):  # the reject option alone: the score and the comparison
        t = time.perf_counter()
        is_digit(digit_scores(probs), predictor.reject_threshold)
        own.append(time.perf_counter() - t)
    inproc = {
        "images": len(x),
        "repeat": size["judge_repeat"],
        "judge_ms": 1000 * med["judge"],
        "probs_ms": 1000 * med["probs"],
        "judge_minus_probs_us_per_image": 1e6 * (med["judge"] - med["probs"]) / len(x),
        "reject_us_per_image": 1e6 * statistics.median(own) / len(x),  # median of 100
    }
    return {"cli": cli, "in_process": inproc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out", default=str(ROOT / "docs" / "trust.md"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "trust.json"))
    ap.add_argument("--quick", action="store_true", help="fewer images everywhere")
    args = ap.parse_args()
    size = QUICK if args.quick else FULL
    try:
        predictor = load_predictor(args.run)
    except Exception as e:  # a missing or broken run: one line, no traceback
        raise SystemExit(f"trust.py: {e}") from None
    if predictor.reject_threshold is None:
        raise SystemExit(
            f"trust.py: {args.run} has no reject threshold; run `mnistlab calibrate {args.run}` first"
        )
    res = {
        "run": args.run,
        "quick": args.quick,
        "sizes": size,
        "model": predictor.name,
        "threshold": predictor.reject_threshold,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_before": os.getloadavg()[0],  # 1-minute load average: was the CPU shared?
        },
    }
    print("rejection ...", flush=True)
    res["rejection"] = rejection(predictor, size)
    print("formatted numbers ...", flush=True)
    res["numbers"] = numbers(predictor, size)
    print("cost ...", flush=True)
    res["cost"] = cost(args.run, predictor, size)
    res["machine"]["load_after"] = os.getloadavg()[0]
    atomic_write_json(args.json, res)
    print(trust_report.write(res, args.out))


if __name__ == "__main__":
    main()
