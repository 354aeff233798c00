"""A comparison's rows, read from finished run folders: accuracy over the seeds,
parameters, FLOPs and speed (``compare`` and ``merge`` both write them), and the
checks that a kept run's files are readable.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from ..errors import MnistlabError
from ..runs.checkpoint import load_checkpoint
from ..runs.folder import epoch_records
from .summary import summarize

__all__ = ["check_readable", "damaged", "slug", "summarise"]

# what a kept run's JSON files must hold for compare to read them
_SHAPES = {"config.json": None, "last.json": "resume", "best.json": "metrics"}


def damaged(path: Path, what: str) -> MnistlabError:
    return MnistlabError(
        f"{path} is damaged ({what}); delete the folder {path.parent} "
        "and run the same command again to train that run anew"
    )


def check_readable(run_dir: Path) -> None:
    """A kept run's JSON files must parse, or say which one is damaged and how to redo it."""
    for name, key in _SHAPES.items():
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            raise damaged(path, "not a JSON object")
        if key is not None and not isinstance(doc.get(key), dict):
            raise damaged(path, f"no {key!r} object in it")


def _numbers(record: dict, *keys: str) -> bool:
    """Whether ``record`` holds a number at each of ``keys`` (a metrics line may be edited)."""
    return all(type(record.get(k)) in (int, float) for k in keys)


@torch.inference_mode()
def _speed(model: torch.nn.Module, device, batch: int = 1000) -> tuple[float, float]:
    """(images per second at batch ``batch``, median single-image latency in ms)."""
    model.eval()
    x = torch.zeros(batch, 1, 28, 28, device=device)
    model(x)  # warm-up
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        model(x)
        rates.append(batch / (time.perf_counter() - t))
    one = x[:1]
    for _ in range(5):  # first calls at a new shape pick kernels; keep them out
        model(one)
    lat = []
    for _ in range(50):
        t = time.perf_counter()
        model(one)
        lat.append(1000 * (time.perf_counter() - t))
    return statistics.median(rates), statistics.median(lat)


def summarise(label: str, runs: list[Path], device) -> dict:
    accs, secs, curves = [], [], []
    for run in runs:
        doc = json.loads((run / "best.json").read_text())
        acc = doc["metrics"].get("test_acc")
        if not isinstance(acc, (int, float)) or not 0 <= acc <= 1:
            raise damaged(run / "best.json", "no test accuracy between 0 and 1")
        accs.append(acc)
        epochs = epoch_records(run)
        split = "val" if epochs and "val_acc" in epochs[0] else "test"
        keys = ("epoch", "train_seconds", f"{split}_acc")
        if not epochs or not all(_numbers(r, *keys) for r in epochs):
            raise damaged(run / "metrics.jsonl", "no epoch records with their times and accuracy")
        secs.append(sum(r["train_seconds"] for r in epochs))
        curves.append(
            {
                "run": run.name,
                "split": split,
                "epochs": [r["epoch"] for r in epochs],
                "acc": [r[f"{split}_acc"] for r in epochs],
            }
        )
    model, _ = load_checkpoint(runs[0], device)
    summ = summarize(model)
    ips, latency = _speed(model, device)
    return {
        "label": label,
        "model": model.meta.name,
        "seeds": len(runs),
        "test_acc_mean": statistics.mean(accs),
        "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else None,  # one seed: none
        "test_accs": accs,
        "params": summ.params,
        "mflops": summ.flops / 1e6,
        "train_seconds": statistics.mean(secs),
        "images_per_s": ips,
        "latency_ms": latency,
        "curves": curves,
        "runs": [r.name for r in runs],
    }


def slug(label: str) -> str:
    """``label`` made safe as a file name: ``mlp:loss=ce`` -> ``mlp_loss_ce``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
