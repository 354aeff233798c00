"""The levers behind the speedrun preset, measured side by side (docs/speedrun.md).

    python experiments/speedrun.py            # prints the tables, writes runs/speedrun-levers.json

Each variant is the `speedrun` preset with one thing changed, trained through `fit`
exactly as `mnistlab train` does, seeds 0-2, the variants interleaved so that a
slow minute of the machine falls on all of them. Accuracy is the validation
split's: nothing here looks at the test set.

Levers that are not config options are timed on the preset's own training step in
bare loops: torch.compile and bf16 autocast against eager fp32 on batches built
beforehand; batch-size schedules (the same images in batches that grow or shrink
on the way) with their validation accuracy over 8 seeds; and what `fit` adds to the
bare loop, each layer in turn (the loader, `train_one_epoch`'s bookkeeping, `fit`),
interleaved in one process.
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
from mnistlab.data.normalize import normalize
from mnistlab.runs.folder import epoch_records
from mnistlab.train.build import build_training, make_train_loader
from mnistlab.train.config import TrainConfig
from mnistlab.train.fitting import fit
from mnistlab.train.loop import evaluate, train_one_epoch

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
SCHEDULES = {  # name -> (batch size, steps) in turn; each is 28,160 images, as the preset
    "128 x 220 (the preset)": [(128, 220)],
    "128 x 110, then 256 x 55": [(128, 110), (256, 55)],
    "128 x 146, then 256 x 37": [(128, 146), (256, 37)],
    "96 x 146, then 256 x 55": [(96, 146), (256, 55)],
    "64 x 110, 128 x 55, then 256 x 55": [(64, 110), (128, 55), (256, 55)],
    "256 x 55, then 128 x 110 (shrinking)": [(256, 55), (128, 110)],
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


def batch_schedules(data_dir: str, seeds: range = range(8)) -> dict:
    """The preset's images in batches whose size changes on the way (one-cycle over
    all the steps), a bare loop on a seeded shuffle of the training split; validation
    accuracy."""
    base = TrainConfig.from_preset("speedrun")
    out = {name: {"seconds": [], "val_acc": []} for name in SCHEDULES}
    for seed in seeds:
        data = load_data("mnist", data_dir, "cpu", base.val_size, seed)
        info, (images, labels) = data.info, data.train
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        for name, plan in SCHEDULES.items():
            cfg = replace(base, seed=seed, steps=sum(n for _, n in plan))
            torch.manual_seed(seed)
            model, opt, sched, loss_fn = build_training(
                cfg, info.mean, info.std, info.classes, cfg.steps, torch.device("cpu")
            )
            start = time.perf_counter()
            i = 0
            for size, steps in plan:
                for _ in range(steps):
                    idx = order[i : i + size]
                    i += size
                    x = normalize(images.index_select(0, idx), info.mean, info.std)
                    _bare_step(model, opt, sched, loss_fn, x, labels.index_select(0, idx))
            out[name]["seconds"].append(time.perf_counter() - start)
            acc = evaluate(model, *data.val, info.mean, info.std, loss_fn)["acc"]
            out[name]["val_acc"].append(acc)
    return out


def loop_layers(data_dir: str, repeats: int = 12) -> dict:
    """The preset's 220 steps four ways, interleaved: a bare loop on batches built
    beforehand, the bare loop drawing from the loader, `train_one_epoch`, and `fit`
    (its `train_seconds`); each repeat starts from a different one of the four."""
    cfg = TrainConfig.from_preset("speedrun", data_dir=data_dir)
    data = load_data("mnist", data_dir, "cpu", cfg.val_size, cfg.seed)
    info = data.info
    loader = make_train_loader(cfg, *data.train, info.mean, info.std)

    def build():
        torch.manual_seed(cfg.seed)
        return build_training(
            cfg, info.mean, info.std, info.classes, len(loader), torch.device("cpu")
        )

    kinds = ["prebuilt batches", "loader", "train_one_epoch", "fit"]
    out = {k: [] for k in kinds}
    batches = list(loader.batches(1, stop=cfg.steps))
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for kind in kinds[r % 4 :] + kinds[: r % 4]:  # each goes first in turn
                if kind == "fit":
                    out[kind].append(_fit(replace(cfg, out_dir=tmp, run_name=f"fit-{r}"))[0])
                    continue
                model, opt, sched, loss_fn = build()
                start = time.perf_counter()
                if kind == "train_one_epoch":
                    train_one_epoch(model, loader, opt, loss_fn, 1, sched, steps=cfg.steps)
                else:
                    source = (
                        batches if kind == "prebuilt batches" else loader.batches(1, stop=cfg.steps)
                    )
                    for x, y in source:
                        _bare_step(model, opt, sched, loss_fn, x, y)
                out[kind].append(time.perf_counter() - start)
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


def _table(what: str, rows: dict) -> None:
    """Median time, its ratio to the first row, and the mean validation accuracy."""
    base = statistics.median(next(iter(rows.values()))["seconds"])
    print(f"\n| {what} | median training | vs first | mean val acc |\n|---|---:|---:|---:|")
    for name, r in rows.items():
        med = statistics.median(r["seconds"])
        acc = statistics.mean(r["val_acc"])
        print(f"| {name} | {med:.2f} s | {med / base:.2f}x | {100 * acc:.2f}% |")


def main() -> None:
    keep_freed_memory()
    data_dir = os.environ.get("MNISTLAB_DATA", str(ROOT.parent / "shared" / "data" / "mnist"))
    results = {
        "variants": variants(data_dir),
        "bare": bare_loops(data_dir),
        "omp": omp_active(data_dir),
        "schedules": batch_schedules(data_dir),
        "layers": loop_layers(data_dir),
    }
    _table("variant", results["variants"])
    bare = results["bare"]
    eager = statistics.median(bare["eager"]["seconds"])
    print(f"\nbare loop, eager fp32: {eager:.2f} s")
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
    _table("batch-size schedule (bare loop, 8 seeds)", results["schedules"])
    layers = results["layers"]
    first = statistics.median(layers["prebuilt batches"])
    print("\n| the preset's steps through | median | vs prebuilt batches |\n|---|---:|---:|")
    for kind, secs in layers.items():
        med = statistics.median(secs)
        print(f"| {kind} | {med:.3f} s | {med / first:.3f}x |")
    path = ROOT / "runs" / "speedrun-levers.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
