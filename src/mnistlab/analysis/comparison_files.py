"""What a comparison writes: comparison.md, .csv and .json, three charts and
report.html, all renamed into place together; and the table the command line prints.
Split from ``compare`` (which re-exports ``comparison_table`` and ``write_outputs``)."""

from __future__ import annotations

from pathlib import Path

from .._io import atomic_write, atomic_write_json, staged_files

__all__ = ["comparison_table", "write_outputs"]

_COLUMNS = [
    ("model", lambda r: r["label"]),
    ("test accuracy", lambda r: _accuracy(r)),
    ("parameters", lambda r: f"{r['params']:,}"),
    ("MFLOPs", lambda r: f"{r['mflops']:.2f}"),
    ("train time (s)", lambda r: f"{r['train_seconds']:.1f}"),
    ("images/s", lambda r: f"{r['images_per_s']:,.0f}"),
    ("latency (ms)", lambda r: f"{r['latency_ms']:.2f}"),
]


def _accuracy(row: dict) -> str:
    """Mean ± std over seeds; one seed has no spread, so none is shown."""
    if row["test_acc_std"] is None:
        return f"{100 * row['test_acc_mean']:.2f}%"
    return f"{100 * row['test_acc_mean']:.2f} ± {100 * row['test_acc_std']:.2f}%"


def _accuracy_note(seeds: list[int]) -> str:
    shown = ", ".join(map(str, seeds))
    if len(seeds) == 1:
        return f"Test accuracy: one seed ({shown}), so no spread; give --seeds 0,1,2 to see one."
    return f"Test accuracy: mean ± std over seeds {shown}."


# comparison.csv: the label, then these raw numbers (an empty std: one seed)
_CSV_KEYS = [
    "test_acc_mean",
    "test_acc_std",
    "params",
    "mflops",
    "train_seconds",
    "images_per_s",
    "latency_ms",
]


def comparison_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The comparison as ``(header, cells)``: one formatted row per entry."""
    return [c for c, _ in _COLUMNS], [[f(r) for _, f in _COLUMNS] for r in rows]


def write_outputs(rows: list[dict], out: Path, seeds: list[int]) -> None:
    """comparison.md, .csv and .json, the three charts and report.html, into ``out``:
    drawn in a temp folder there, then renamed into place together (report.html last),
    so an interrupted write leaves the last comparison whole, not half of each."""
    with staged_files(out, "comparison", last="report.html") as tmp:
        _write_outputs(rows, tmp, seeds)


def _write_outputs(rows: list[dict], out: Path, seeds: list[int]) -> None:
    from .plots.compare import plot_accuracy, plot_overlay, plot_tradeoff

    header, cells = comparison_table(rows)
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(c) + " |" for c in cells]
    note = (
        f"\n\n{_accuracy_note(seeds)} Train "
        "time: mean of the summed epoch times. images/s: batch 1000; latency: one image, "
        "median of 50; both on the first seed's best checkpoint, this machine.\n"
    )
    atomic_write(out / "comparison.md", lambda p: p.write_text("\n".join(md) + note))
    csv_rows = [",".join(["model", *_CSV_KEYS])]
    csv_rows += [
        ",".join("" if v is None else str(v) for v in (r["label"], *(r[k] for k in _CSV_KEYS)))
        for r in rows
    ]
    atomic_write(out / "comparison.csv", lambda p: p.write_text("\n".join(csv_rows) + "\n"))
    atomic_write_json(out / "comparison.json", {"seeds": seeds, "rows": rows})
    plot_accuracy(rows, out / "accuracy.png")
    plot_tradeoff(rows, out / "tradeoff.png")
    plot_overlay(rows, out / "curves.png")
    from .report import html_page, img_tag, table_html

    body = "\n".join(
        [
            "<h1>Comparison</h1>",
            f"<div class='sub'>{len(rows)} entries × seeds {', '.join(map(str, seeds))}</div>",
            table_html(header, cells),
            f"<p>{note.strip()}</p>",
            img_tag(out / "accuracy.png", "test accuracy per model"),
            img_tag(out / "tradeoff.png", "accuracy against size and compute"),
            img_tag(out / "curves.png", "validation curves"),
        ]
    )
    page = html_page("mnistlab · comparison", body)
    atomic_write(out / "report.html", lambda p: p.write_text(page, encoding="utf-8"))
