"""``mnistlab bench --only speedrun``: the speedrun preset, measured the way speedruns are.

A fixed recipe trains for its fixed budget and is evaluated once on the test set: no
early stopping, no "first time it crossed 99%". Each seed is a whole
``mnistlab train --preset speedrun`` (``fit``, in this process), and its time is
the run's training wall time, the data already on the device. The first run in a
process pays one-off costs (oneDNN picks and builds its kernels); it is timed on its
own, and the seeds after it are the warm runs the median is taken over.

Beside it, in the same run: the canonical PyTorch example's recipe (``--preset
seed003-example``, per-sample loader) under the same protocol, and the machine's
matmul peak against the GFLOP/s the speedrun achieves.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace

import torch

from ..analysis.summary import count_flops
from ..data.loader import MnistData
from ..models import create_model
from ..train.config import TrainConfig
from ..train.fitting import fit
from .persample import persample_loader
from .sections import Budget, _recipe, eval_split
from .timing import _sync, time_to_accuracy

__all__ = ["sgemm_peak", "speedrun", "speedrun_markdown"]

PRESET = "speedrun"
CANONICAL = "seed003-example"


def sgemm_peak(n: int = 4096, runs: int = 5, device: torch.device | None = None) -> dict:
    """The fp32 matmul rate of an ``n`` x ``n`` product (median of ``runs``), in GFLOP/s:
    the most arithmetic this device does per second with torch's current threads."""
    device = device or torch.device("cpu")
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    times = []
    for i in range(runs + 1):  # the first call is a warm-up
        _sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        if i:
            times.append(time.perf_counter() - t)
    seconds = statistics.median(times)
    return {"n": n, "seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9}


def _speedrun_config(seed: int, out_dir: str, data_dir, device, budget: Budget) -> TrainConfig:
    cfg = TrainConfig.from_preset(PRESET, seed=seed)
    if budget.max_steps:  # the smoke run: a few steps
        cfg = replace(cfg, steps=budget.max_steps)
    return replace(
        cfg, out_dir=out_dir, run_name=f"seed{seed}", data_dir=data_dir, device=str(device)
    )


def _one_run(cfg: TrainConfig) -> dict:
    result = fit(cfg)
    last = result.history[-1]
    return {
        "seed": cfg.seed,
        "seconds": sum(r["train_seconds"] for r in result.history),
        "steps": sum(r["steps"] for r in result.history),
        "test_acc": last["test_acc"],
        "val_acc": last.get("val_acc"),
    }


def speedrun(data: MnistData, data_dir, device, budget: Budget) -> dict:
    """``budget.speedrun_seeds`` warm runs of the preset after one cold one, the
    canonical recipe's full budget, and the sgemm peak; plain data for the report."""
    model = create_model(TrainConfig.from_preset(PRESET).model)
    fwd_flops = count_flops(model)
    with tempfile.TemporaryDirectory() as tmp:
        cold = _one_run(_speedrun_config(budget.speedrun_seeds, tmp, data_dir, device, budget))
        runs = [
            _one_run(_speedrun_config(seed, tmp, data_dir, device, budget))
            for seed in range(budget.speedrun_seeds)
        ]
    cfg = TrainConfig.from_preset(PRESET)
    images = runs[0]["steps"] * cfg.batch_size
    median = statistics.median(r["seconds"] for r in runs)
    canonical = _canonical(data, device, budget)
    peak = sgemm_peak(budget.sgemm_n, device=device)
    achieved = 3 * fwd_flops * images / median / 1e9  # forward + backward ~ 3x the forward
    return {
        "preset": PRESET,
        "model": cfg.model,
        "batch": cfg.batch_size,
        "steps": runs[0]["steps"],
        "images": images,
        "threads": torch.get_num_threads(),
        "cold": cold,
        "runs": runs,
        "median": median,
        "mean_acc": statistics.mean(r["test_acc"] for r in runs),
        "min_acc": min(r["test_acc"] for r in runs),
        "canonical": canonical,
        "ratio": canonical["seconds"] / median,
        "ratio_to_99": (canonical["to_99"] / median) if canonical["to_99"] else None,
        "fwd_mflops": fwd_flops / 1e6,
        "gflops": achieved,
        "sgemm": peak,
        "share_of_peak": achieved / peak["gflops"],
    }


def _canonical(data: MnistData, device, budget: Budget) -> dict:
    """The canonical example's recipe for its whole budget (14 epochs), seed 0.

    Evaluated every half epoch with the clock stopped, so the same run also says when
    it first reached 99%, which is the kinder comparison for it.
    """
    cfg = TrainConfig.from_preset(CANONICAL, seed=0)
    cfg.channels_last = False  # the example as written: NCHW, as torch defaults
    mean, std = data.info.mean, data.info.std
    x, y = data.train  # seed 003 trains on all 60,000 images
    if budget.images:
        x, y = x[: budget.images], y[: budget.images]
    pl = persample_loader(x.cpu(), y.cpu(), cfg.batch_size, mean, std, cfg.seed)
    model, opt, sched, loss_fn = _recipe(cfg, len(pl), device, data.info)
    r = time_to_accuracy(
        model,
        lambda epoch: pl,
        len(pl),
        opt,
        loss_fn,
        sched,
        eval_split(data, budget),
        mean,
        std,
        device,
        target=float("inf"),  # never stops early: the fixed budget, every evaluation kept
        max_epochs=cfg.epochs,
        max_steps=budget.max_steps,
    )
    history = r["history"]
    first = next((h for h in history if h["acc"] >= 0.99), None)
    return {
        "preset": CANONICAL,
        "epochs": history[-1]["epochs"],
        "seconds": history[-1]["seconds"],
        "test_acc": history[-1]["acc"],
        "to_99": first["seconds"] if first else None,
        "to_99_epochs": first["epochs"] if first else None,
        "eval_seconds": r["eval_seconds"],
    }


def speedrun_markdown(s: dict) -> list[str]:
    """Section 7 of results.md: each seed, the canonical recipe, the ratio, the limit."""
    cold, c, peak = s["cold"], s["canonical"], s["sgemm"]
    lines = [
        "## 7. Speedrun",
        "",
        f"*Measured {s['measured']}.*",
        "",
        f"`mnistlab train --preset {s['preset']}`: the `{s['model']}` network, "
        f"{s['steps']} steps of batch {s['batch']} ({s['images']:,} images), then one "
        "evaluation on the 10,000 test images. Time: the run's training wall time, the "
        f"data already on the device, {s['threads']} torch threads. The first run in this "
        f"process paid one-off costs: {cold['seconds']:.2f} s (seed {cold['seed']}, "
        f"{100 * cold['test_acc']:.2f}%) — a one-off `mnistlab train` pays them too. "
        "The seeds below ran after it.",
        "",
        "| seed | training time | test acc | val acc |",
        "|---:|---:|---:|---:|",
    ]
    for r in s["runs"]:
        val = "-" if r["val_acc"] is None else f"{100 * r['val_acc']:.2f}%"
        lines.append(f"| {r['seed']} | {r['seconds']:.2f} s | {100 * r['test_acc']:.2f}% | {val} |")
    n = len(s["runs"])
    lines += [
        "",
        f"**Median {s['median']:.2f} s of training; mean test accuracy "
        f"{100 * s['mean_acc']:.2f}% over {n} seeds (lowest {100 * s['min_acc']:.2f}%).**",
        "",
        f"The canonical PyTorch example's recipe (`--preset {c['preset']}`: Adadelta, "
        f"per-sample loader) in this same run, seed 0, its whole budget of "
        f"{c['epochs']:g} epochs: {c['seconds']:.1f} s of training, "
        f"{100 * c['test_acc']:.2f}% test accuracy.",
        "",
        "| comparison | canonical | speedrun | ratio |",
        "|---|---:|---:|---:|",
        f"| fixed budget, evaluated once (this protocol) | {c['seconds']:.1f} s "
        f"| {s['median']:.2f} s | **{s['ratio']:.0f}x** |",
    ]
    if c["to_99"] is not None:
        lines.append(
            f"| canonical stopped the first time its test accuracy reached 99% "
            f"(after {c['to_99_epochs']:g} epochs; kinder to it) | {c['to_99']:.1f} s "
            f"| {s['median']:.2f} s | {s['ratio_to_99']:.0f}x |"
        )
    else:
        lines.append("| canonical's first time at 99% | not reached | | |")
    lines += [
        "",
        f"**The physical limit.** A {peak['n']}x{peak['n']} fp32 matmul here runs at "
        f"{peak['gflops']:.0f} GFLOP/s; the speedrun achieves {s['gflops']:.0f} GFLOP/s "
        f"(forward+backward counted as 3x its {s['fwd_mflops']:.2f} MFLOPs per image), "
        f"{100 * s['share_of_peak']:.0f}% of it. Small convolutions, pooling and the "
        "per-step work of a batch of 128 keep it there.",
        "",
    ]
    return lines
