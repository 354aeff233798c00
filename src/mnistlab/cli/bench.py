"""Speed measurements: ``bench`` and ``ops-bench``."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UsageError
from .options import DATA_DIR, console, table

__all__ = ["bench", "ops_bench"]


def bench(
    quick: bool = typer.Option(False, "--quick", help="A seconds-long smoke run (for CI)."),
    out: Path = typer.Option(Path("benchmarks/results.md"), help="Markdown file to write."),
    only: str = typer.Option(
        None,
        help="Comma-separated sections: data, time99, inference, scaling, choices, preprocess, "
        "speedrun. "
        "\\[default: all]",
    ),
    device: str = typer.Option("cpu", help="cpu, cuda, mps or auto: where training runs."),
    data_dir: Path = DATA_DIR,
) -> None:
    """Measure speed side by side and write benchmarks/results.md (and .json).

    Data path (device-resident vs per-sample loader), time to 99% (fast vs the
    canonical example, median of 5 seeds), inference (eager, torch.compile, ONNX
    Runtime), scaling (batch size, threads) and trainer choices (fused vs foreach
    vs for-loop optimiser, torch.compile). The full run takes about half an hour
    on a 2-core CPU.
    """
    from .._runtime import pick_device
    from ..bench import SECTIONS, run_bench

    if only is not None and not only.strip(", "):
        raise UsageError(f"--only needs a section: {', '.join(SECTIONS)}")
    sections = tuple(s.strip() for s in only.split(",") if s.strip()) if only else SECTIONS
    out = _bench_output(out)
    path = run_bench(
        out,
        quick=quick,
        sections=sections,
        device=pick_device(device),
        data_dir=str(data_dir) if data_dir else None,
        log=console.print,
    )
    console.print(f"wrote {path} and {path.with_suffix('.json')}")


def _bench_output(out: Path) -> Path:
    """``out`` (Markdown) and the ``.json`` beside it may be written: a .md file, and a
    JSON beside it that is missing or an earlier bench's results (never a checkpoint)."""
    import json

    from .._io import output_file

    out = output_file(out, (".md",), option="out")
    beside = out.with_suffix(".json")
    if beside.exists():
        try:
            doc = json.loads(beside.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            doc = None
        if not (isinstance(doc, dict) and "machine" in doc and "budget" in doc):
            raise UsageError(
                f"{beside} exists and is not an earlier bench's results; it would be "
                "overwritten: choose another name for --out",
            )
    return out


def ops_bench(
    batches: str = typer.Option("1,64", help="Comma-separated batch sizes."),
    repeats: int = typer.Option(5, min=1, max=1000, help="Timed repeats per measurement (median)."),
    threads: int = typer.Option(None, min=1, help="CPU threads for torch (at most 4 per CPU)."),
) -> None:
    """Time LeNet-5 with the from-scratch layers (loops, im2col) against torch's."""
    import torch

    from ..bench.ops import MAX_BATCH, bench_ops
    from ..train.config import max_threads

    sizes = _batch_sizes(batches, MAX_BATCH)
    if threads is not None and threads > max_threads():
        raise UsageError(
            f"--threads must be between 1 and {max_threads()} (4 per CPU), got {threads}"
        )
    if threads:
        torch.set_num_threads(threads)
    rows = bench_ops(sizes, repeats)
    title = f"LeNet-5 per batch, {torch.get_num_threads()} CPU threads, median of runs"
    header = ["ops", "batch", "forward ms", "× torch", "fwd+bwd ms", "× torch "]
    cells = [
        [
            r["ops"],
            str(r["batch"]),
            f"{r['forward_ms']:.2f}",
            f"{r['forward_x']:.1f}",
            f"{r['train_ms']:.2f}",
            f"{r['train_x']:.1f}",
        ]
        for r in rows
    ]
    console.print(table(title, header, cells))
    capped = [r for r in rows if r["measured_batch"] < r["batch"]]
    if capped:
        console.print(
            f"loops: timed on {capped[0]['measured_batch']} images per call and scaled to the "
            "batch (its cost grows linearly with the batch); fewer repeats."
        )


def _batch_sizes(text: str, most: int) -> list[int]:
    """``--batches`` as a list of sizes from 1 to ``most``, or a one-line usage error."""
    what = f"--batches must be batch sizes from 1 to {most:,} separated by commas, e.g. 1,64"
    parts = [b.strip() for b in text.split(",")]
    try:
        sizes = [int(b) for b in parts]
    except ValueError:
        raise UsageError(f"{what}; got {text!r}") from None
    if not sizes or not all(1 <= b <= most for b in sizes):
        raise UsageError(f"{what}; got {text!r}")
    return sizes
