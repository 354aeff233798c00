"""Run the benchmark sections and write them as Markdown (plus the raw figures as JSON)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .._io import atomic_write
from .._runtime import keep_freed_memory
from ..data.loader import load_data
from ..errors import MnistlabError, UsageError
from .choices import choices_markdown, trainer_choices
from .preprocess import preprocess, preprocess_markdown
from .sections import Budget, data_path, inference, scaling, time_to_99
from .speedrun import speedrun, speedrun_markdown

__all__ = ["SECTIONS", "run_bench"]

SECTIONS = ("data", "time99", "inference", "scaling", "choices", "preprocess", "speedrun")
QUICK = Budget(
    images=2048,
    test_images=2048,
    repeats=1,
    seeds=1,
    canonical_seeds=1,
    max_steps=4,
    latency_runs=5,
    throughput_runs=1,
    batch_sizes=(64, 256),
    threads=(1,),
    preprocess_runs=20,
    predict_files=40,
    predict_repeats=1,
    speedrun_seeds=1,
    sgemm_n=512,
)


def machine(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = str(device)
    if device.type == "cuda":
        dev = f"cuda ({torch.cuda.get_device_name(device)})"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": platform.platform(),
        "device": dev,
    }


def run_bench(
    out: str | os.PathLike,
    quick: bool = False,
    sections: tuple[str, ...] = SECTIONS,
    device: torch.device | None = None,
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Run ``sections`` and write ``out`` (Markdown) and ``out`` with ``.json`` beside it."""
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise UsageError(f"unknown bench section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    device = device or torch.device("cpu")
    keep_freed_memory()  # as `mnistlab train` does, so both sides run on a tuned allocator
    budget = QUICK if quick else Budget()
    data = load_data("mnist", data_dir, device, val_size=0)
    out = Path(out)
    try:  # fail before half an hour of measuring, not after
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".{out.name}.probe"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise MnistlabError(
            f"is not writable: cannot write {out} ({e.strerror}); choose another file",
            option="out",
        ) from None
    results: dict = {"machine": machine(device), "quick": quick, "budget": budget.__dict__}
    previous = _previous(out.with_suffix(".json"), results)
    steps = {
        "data": lambda: data_path(data, device, budget),
        "time99": lambda: time_to_99(data, device, budget),
        "inference": lambda: inference(data, budget),
        "scaling": lambda: scaling(data, device, budget),
        "choices": lambda: trainer_choices(data, device, budget),
        "preprocess": lambda: preprocess(data, budget),
        "speedrun": lambda: speedrun(data, data_dir, device, budget),
    }
    for name in sections:
        log(f"bench: {name} ...")
        t = time.perf_counter()
        results[name] = steps[name]() | {"measured": time.strftime("%Y-%m-%d %H:%M")}
        log(f"bench: {name} done in {time.perf_counter() - t:.0f} s")
        # written after every section, so an interrupted run keeps what it measured;
        # sections not measured again stay as an earlier run on this machine left them
        _write(out, {**previous, **results})
    return out


def _write(out: Path, results: dict) -> None:
    text = to_markdown(results)
    atomic_write(out, lambda p: p.write_text(text, encoding="utf-8"))
    blob = json.dumps(results, indent=1, default=_jsonable)
    atomic_write(out.with_suffix(".json"), lambda p: p.write_text(blob, encoding="utf-8"))


def _previous(path: Path, now: dict) -> dict:
    """Sections of an earlier run to keep: same quick/full mode, same machine and torch."""
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    same = old.get("quick") == now["quick"] and all(
        old.get("machine", {}).get(k) == now["machine"][k] for k in ("cpu", "torch", "device")
    )
    return {k: old[k] for k in SECTIONS if k in old} if same else {}


def _jsonable(v):
    return str(v)


def _s(v: float | None) -> str:
    return "not reached" if v is None else f"{v:.2f} s"


def to_markdown(r: dict) -> str:
    m = r["machine"]
    cmd = "`mnistlab bench`"
    if r["quick"]:
        b = r["budget"]
        on = f" on {b['images']:,} training images" if b.get("images") else ""
        on += f" and {b['test_images']:,} test images" if b.get("test_images") else ""
        cmd = f"`mnistlab bench --quick` (a smoke run{on}: its figures mean nothing)"
    lines = [
        "# mnistlab bench results",
        "",
        f"Written by {cmd}. Each ratio compares two things measured side by side in "
        "one run, on this machine.",
        "",
        f"- **machine:** {m['cpu']}, {m['logical_cores']} logical cores, {m['os']}",
        f"- **software:** torch {m['torch']} ({m['torch_threads']} threads), Python {m['python']}",
        f"- **device:** {m['device']} · **date:** {m['date']}",
        "",
    ]
    if "data" in r:
        d = r["data"]
        lines += [
            "## 1. Data path",
            "",
            f"*Measured {d['measured']}.*",
            "",
            f"`{d['model']}` with seed 000's recipe (`--preset {d['preset']}`), one epoch of "
            f"{d['images']:,} images per loader, {d['repeats']} epochs each, interleaved; "
            "median training seconds, loading included.",
            "",
            "| loader | median epoch | runs (s) | test acc after the epoch |",
            "|---|---:|---|---|",
        ]
        about = {
            "device": "mnistlab: the split as one uint8 tensor on the device",
            "per-sample": "the seeds': PIL image -> ToTensor -> Normalize -> DataLoader collate",
        }
        for k, label in about.items():
            runs = ", ".join(f"{t:.2f}" for t in d["seconds"][k])
            accs = ", ".join(f"{100 * a:.2f}%" for a in d["test_acc"][k])
            lines.append(f"| {label} | {d['median'][k]:.2f} s | {runs} | {accs} |")
        extra = d["median"]["per-sample"] - d["median"]["device"]
        lines += [
            "",
            f"**Device-resident loader: {d['speedup']:.1f}x faster per epoch.** The per-sample "
            f"pipeline adds {extra:.2f} s per epoch ({1e6 * extra / d['images']:.0f} µs per "
            f"image); the other {d['median']['device']:.2f} s is the network's own work, "
            "which both loaders pay, so it bounds the ratio.",
            "",
        ]
    if "time99" in r:
        t = r["time99"]
        tgt = f"{100 * t['target']:.1f}%"
        lines += [
            f"## 2. Time to {tgt} test accuracy",
            "",
            f"*Measured {t['measured']}.*",
            "",
            f"Training seconds until the test accuracy first reaches {tgt}, evaluated every "
            "half epoch (evaluation time excluded; listed below). Median over seeds "
            "0..N-1; a seed that never reaches it counts as the slowest.",
            "",
            "| recipe | loader | median | median epochs | seeds at target | per seed | eval time |",
            "|---|---|---:|---:|---:|---|---:|",
        ]
        for preset in ("fast", "seed003-example"):
            p = t[preset]
            per = ", ".join(_s(x["seconds"]).replace(" s", "") for x in p["runs"])
            ep = p["median_epochs"]
            ep_s = "-" if ep is None else f"{ep:.1f}"
            lines.append(
                f"| `--preset {preset}` | {p['loader']} | {_s(p['median'])} | {ep_s} "
                f"| {p['reached']}/{p['seeds']} | {per} | {p['eval_seconds']:.1f} s |"
            )
        sp = t["speedup"]
        sp_s = "n/a" if sp is None else f"{sp:.0f}x"
        lines += ["", f"**`fast` reaches {tgt} {sp_s} sooner than the canonical example.**", ""]
    if "inference" in r:
        i = r["inference"]
        lines += [
            "## 3. Inference (CPU)",
            "",
            f"*Measured {i['measured']}.*",
            "",
            f"`{i['model']}`: throughput on a batch of {i['batch']} test images (median), and "
            f"single-image latency over {i['runs']} calls of `predict`'s path: read a PNG, "
            "preprocess it to 28x28 (`to_mnist`), run the model. *Model alone* is the median "
            "of the model's call on one image.",
            "",
            "| backend | images/s (batch) | vs eager | latency p50 | latency p99 | model alone |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in i["rows"]:
            if "note" in row:
                lines.append(f"| {row['backend']} | {row['note']} | | | | |")
            else:
                lines.append(
                    f"| {row['backend']} | {row['images_per_s']:,.0f} | {row['throughput_x']:.2f}x "
                    f"| {row['p50_ms']:.2f} ms | {row['p99_ms']:.2f} ms "
                    f"| {row['model_ms']:.2f} ms |"
                )
        if i.get("compile_seconds"):
            lines += ["", f"torch.compile's first call took {i['compile_seconds']:.1f} s."]
        lines.append("")
    if "scaling" in r:
        s = r["scaling"]
        lines += [
            "## 4. Scaling",
            "",
            f"*Measured {s['measured']}.*",
            "",
            f"The default recipe's network (`{s['model']}`, {s['fwd_mflops']:.2f} MFLOPs per "
            "image forward), one training epoch (the default recipe, one-cycle over that "
            "epoch) scaled to 60,000 images. GFLOP/s counts forward+backward as 3x the "
            "forward FLOPs. The test accuracy (one seed) shows what a batch size costs.",
            "",
            "| threads | batch | layout | epoch | steps/s | GFLOP/s | test acc after it |",
            "|---:|---:|---|---:|---:|---:|---:|",
        ]
        for row in s["rows"]:
            layout = "NHWC" if row["channels_last"] else "NCHW"
            lines.append(
                f"| {row['threads']} | {row['batch']} | {layout} | {row['epoch_seconds']:.2f} s "
                f"| {row['steps_per_s']:.1f} | {row['gflops']:.1f} | {100 * row['test_acc']:.2f}% |"
            )
        lines += ["", _limits(s["rows"]), ""]
    if "choices" in r:
        lines += choices_markdown(r["choices"])
    if "preprocess" in r:
        lines += preprocess_markdown(r["preprocess"])
    if "speedrun" in r:
        lines += speedrun_markdown(r["speedrun"])
    return "\n".join(lines)


def _limits(rows: list[dict]) -> str:
    """What the scaling table says limits training speed, in numbers from the table."""
    nhwc = {(r["threads"], r["batch"]): r for r in rows if r["channels_last"]}
    threads = sorted({t for t, _ in nhwc})
    top = threads[-1]
    at_top = sorted((b, r) for (t, b), r in nhwc.items() if t == top)
    (b0, r0), (b1, r1) = at_top[0], at_top[-1]
    text = (
        f"**What limits it.** With {top} thread(s) the arithmetic rate rises from "
        f"{r0['gflops']:.0f} GFLOP/s at batch {b0} to {r1['gflops']:.0f} at batch {b1}: small "
        "batches pay a fixed cost per step (Python, operator dispatch, the optimiser step, "
        "BatchNorm's statistics), large ones are bound by arithmetic on the cores, and "
        "their one-epoch accuracy drops because they take fewer steps."
    )
    if len(threads) > 1:
        low = threads[0]
        gains = [
            nhwc[(low, b)]["epoch_seconds"] / nhwc[(top, b)]["epoch_seconds"]
            for b, _ in at_top
            if (low, b) in nhwc
        ]
        text += (
            f" {top} threads run {min(gains):.1f}-{max(gains):.1f}x faster than {low}, short of "
            f"{top / low:.0f}x: the small convolutions and the per-step work split poorly."
        )
    for r in rows:
        if not r["channels_last"] and (r["threads"], r["batch"]) in nhwc:
            ratio = r["epoch_seconds"] / nhwc[(r["threads"], r["batch"])]["epoch_seconds"]
            text += f" NHWC (channels_last) is {ratio:.1f}x faster than NCHW at batch {r['batch']}."
    return text
