"""The levers behind the speedrun preset, measured side by side (docs/speedrun.md).

    python experiments/speedrun.py            # prints the table, writes runs/speedrun-levers.json

Each variant is the `speedrun` preset with one thing changed, trained through `fit`
exactly as `mnistlab train` does, seeds 0-2, the variants interleaved so that a
slow minute of the machine falls on all of them. Accuracy is the validation
split's: nothing here looks at the test set. torch.compile and bf16 autocast are
not config options, so they are timed on the preset's own training step in a bare
loop on batches built beforehand, against the same bare loop in eager fp32; that
loop against `fit` is what the loader (indexing, normalising) and `fit`'s
bookkeeping per step cost.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from mnistlab._runtime import keep_freed_memory
from mnistlab.data.loader import load_data
from mnistlab.runs.folder import epoch_records
from mnistlab.train.config import TrainConfig
from mnistlab.train.fit import build_training, fit, make_train_loader

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
TRAIN = [sys.executable, "-m", "mnistlab", "train", "--preset", "speedrun"]
VARIANTS = {  # name -> overrides of the preset (the same images seen: steps x batch)
    "speedrun preset": {},
    "fast net (16/32 channels, BatchNorm on both)": {"model": "fast"},
    "batch 256, 110 steps": {"batch_size": 256, "steps": 110},
    "batch 64, 440 steps": {"batch_size": 64, "steps": 440},
    "1 thread": {"threads": 1},
    "NCHW (no channels_last)": {"channels_last": False},
    "Adam beta2 0.999 (torch's default)": {"beta2": 0.999},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "lr 0.01": {"lr": 0.01},
}


def _fit(cfg: TrainConfig) -> tuple[float, float]:
    result = fit(cfg)
    last = result.history[-1]
    return sum(r["train_seconds"] for r in result.history), last["val_acc"]


def variants(data_dir: str) -> dict:
    out = {name: {"seconds": [], "val_acc": []} for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        warm = TrainConfig.from_preset("speedrun", out_dir=tmp, run_name="warm-up")
        _fit(replace(warm, data_dir=data_dir, steps=20))  # one-off costs, paid once
        for seed in SEEDS:
            for name, overrides in VARIANTS.items():
                cfg = TrainConfig.from_preset("speedrun", seed=seed, **overrides)
                run_name = f"{list(VARIANTS).index(name)}-{seed}"
                cfg = replace(cfg, out_dir=tmp, run_name=run_name, data_dir=data_dir)
                seconds, acc = _fit(cfg)
                torch.set_num_threads(os.cpu_count() or 1)  # undo a 1-thread variant
                out[name]["seconds"].append(seconds)
                out[name]["val_acc"].append(acc)
                print(f"{name}: seed {seed} {seconds:.2f} s val {acc:.2%}", flush=True)
    return out


def _bare_step(model, opt, sched, loss_fn, x, y):
    loss = loss_fn(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


def bare_loops(data_dir: str, repeats: int = 3) -> dict:
    """The preset's steps in a bare loop: eager, torch.compile (cold, warm), bf16 autocast."""
    cfg = TrainConfig.from_preset("speedrun")
    data = load_data("mnist", data_dir, "cpu", cfg.val_size, 0)
    info = data.info
    loader = make_train_loader(cfg, *data.train, info.mean, info.std)
    batches = list(loader.batches(1, stop=cfg.steps))

    def run(kind: str) -> tuple[float, float | None]:
        torch.manual_seed(0)
        model, opt, sched, loss_fn = build_training(
            cfg, info.mean, info.std, info.classes, len(loader), torch.device("cpu")
        )
        first = None
        if kind == "compile":
            model = torch.compile(model)
            t = time.perf_counter()
            _bare_step(model, opt, sched, loss_fn, *batches[0])
            first = time.perf_counter() - t
        ctx = torch.autocast("cpu", torch.bfloat16) if kind == "bf16" else _nothing()
        t = time.perf_counter()
        with ctx:
            for x, y in batches[1 if first else 0 :]:
                _bare_step(model, opt, sched, loss_fn, x, y)
        return time.perf_counter() - t, first

    out = {}
    for _ in range(repeats):
        for kind in ("eager", "compile", "bf16"):
            try:
                seconds, first = run(kind)
            except Exception as e:  # inductor needs a C++ compiler: say so, do not fail
                out[kind] = {"note": f"unavailable ({type(e).__name__})"}
                continue
            row = out.setdefault(kind, {"seconds": [], "first_step": []})
            row["seconds"].append(seconds)
            if first is not None:
                row["first_step"].append(first)
    return out


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def omp_active(data_dir: str) -> dict:
    """The preset under `mnistlab train` with OMP_WAIT_POLICY unset and ACTIVE: the
    OpenMP runtime reads it once, at start, so each is its own process."""
    out = {}
    for _ in SEEDS:
        for policy in ("default", "ACTIVE"):
            env = {**os.environ, "MNISTLAB_DATA": data_dir}
            env.pop("OMP_WAIT_POLICY", None)
            if policy != "default":
                env["OMP_WAIT_POLICY"] = policy
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run(
                    [*TRAIN, "--out-dir", tmp, "--name", "r"],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                epochs = epoch_records(Path(tmp) / "r")
                out.setdefault(policy, []).append(sum(e["train_seconds"] for e in epochs))
    return out


def main() -> None:
    keep_freed_memory()
    data_dir = os.environ.get("MNISTLAB_DATA", str(ROOT.parent / "shared" / "data" / "mnist"))
    results = {
        "variants": variants(data_dir),
        "bare": bare_loops(data_dir),
        "omp": omp_active(data_dir),
    }
    base = statistics.median(results["variants"]["speedrun preset"]["seconds"])
    print("\n| variant | median training | vs preset | mean val acc |")
    print("|---|---:|---:|---:|")
    for name, r in results["variants"].items():
        med = statistics.median(r["seconds"])
        acc = statistics.mean(r["val_acc"])
        print(f"| {name} | {med:.2f} s | {med / base:.2f}x | {100 * acc:.2f}% |")
    bare = results["bare"]
    eager = statistics.median(bare["eager"]["seconds"])
    print(f"\nbare loop, eager fp32: {eager:.2f} s (fit: {base:.2f} s, {base / eager:.2f}x)")
    for kind in ("compile", "bf16"):
        r = bare[kind]
        if "note" in r:
            print(f"{kind}: {r['note']}")
            continue
        med = statistics.median(r["seconds"])
        # the process's first compile is the cold one; later models reuse its work
        extra = f", cold first step {r['first_step'][0]:.1f} s" if r["first_step"] else ""
        print(f"{kind}: {med:.2f} s warm ({med / eager:.2f}x eager){extra}")
    omp = results["omp"]
    d, a = statistics.median(omp["default"]), statistics.median(omp["ACTIVE"])
    print(f"\nOMP_WAIT_POLICY unset {d:.2f} s, ACTIVE {a:.2f} s ({d / a:.2f}x)")
    path = ROOT / "runs" / "speedrun-levers.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
