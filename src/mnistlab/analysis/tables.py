"""The tables that both the command line and the HTML reports show, as strings.

Each function returns ``(header, rows)``: column names and rows of formatted
cells, ready for a rich table or :func:`mnistlab.analysis.report.table_html`.
"""

from __future__ import annotations

__all__ = ["class_table", "layer_table", "pct"]


def pct(x: float) -> str:
    """A fraction as a percentage with two decimals: ``0.9912`` -> ``99.12%``."""
    return f"{x:.2%}"


def class_table(per_class: dict) -> tuple[list[str], list[list[str]]]:
    """Precision, recall, F1 and image count per class, from an evaluation's ``per_class``."""
    header = ["class", "precision", "recall", "F1", "images"]
    rows = [
        [name, pct(c["precision"]), pct(c["recall"]), pct(c["f1"]), f"{c['support']:,}"]
        for name, c in per_class.items()
    ]
    return header, rows


def layer_table(summary) -> tuple[list[str], list[list[str]]]:
    """One row per layer of a model summary: type, output shape, parameters and MFLOPs."""
    header = ["layer", "type", "output shape", "parameters", "MFLOPs"]
    rows = [
        [
            r.name,
            r.kind,
            "(N, " + ", ".join(map(str, r.output_shape[1:])) + ")" if r.output_shape else "-",
            f"{r.params:,}" if r.params else "-",
            f"{r.flops / 1e6:.3f}" if r.flops else "-",
        ]
        for r in summary.rows
    ]
    return header, rows
