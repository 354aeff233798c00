"""Self-contained HTML reports: one file with every picture embedded, no network needed.

``write_run_report(run_dir)`` gathers a run folder's config, epoch history,
curves, test evaluation (``eval/``, made if missing) and the model summary.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from .._io import atomic_write, output_folder, remove_stale_temps
from ..errors import MnistlabError
from .tables import class_table, layer_table, pct

__all__ = ["html_page", "img_tag", "table_html", "write_run_report"]

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
  color:#1d232b;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:32px 0 10px;border-bottom:1px solid #dde1e6;padding-bottom:4px}
.sub{color:#5b6570;margin-bottom:18px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:10px 16px;min-width:130px}
.card b{display:block;font-size:22px} .card span{color:#5b6570;font-size:13px}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:6px 0}
th,td{border:1px solid #dde1e6;padding:4px 8px;text-align:right} th{background:#eef1f4}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;background:#fff;border:1px solid #dde1e6;border-radius:6px;margin:6px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:14px}
code{background:#eef1f4;padding:1px 4px;border-radius:4px}
"""


def img_tag(path: str | os.PathLike, alt: str) -> str:
    """An <img> with the PNG inlined as base64, or a note if the file is missing."""
    p = Path(path)
    if not p.is_file():
        return f"<p><em>{html.escape(alt)}: not available</em></p>"
    data = base64.b64encode(p.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table_html(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _cards(items: list[tuple[str, str]]) -> str:
    inner = "".join(
        f"<div class='card'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>"
        for k, v in items
    )
    return f"<div class='cards'>{inner}</div>"


def _epoch_rows(history: list[dict]) -> list[list]:
    return [
        [
            h["epoch"],
            f"{h['train_loss']:.4f}",
            pct(h["train_acc"]),
            pct(h["val_acc"]) if "val_acc" in h else "-",
            pct(h["test_acc"]),
            f"{h['lr']:.2e}",
            f"{h['train_seconds']:.1f}",
        ]
        for h in history
    ]


def _read_eval(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        ev = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    keys = ("accuracy", "n", "ece", "per_class", "confusion")
    return ev if isinstance(ev, dict) and all(k in ev for k in keys) else None


def _reject_current(ev: dict, threshold: float | None) -> bool:
    """Whether ``eval.json`` holds the reject summary for the model's threshold: one
    from before the reject option, or before the run was calibrated (another
    threshold), would report rejections the model no longer makes."""
    r = ev.get("reject")
    keys = ("threshold", "rejected", "rejected_rate", "kept", "accuracy_kept", "note")
    return isinstance(r, dict) and all(k in r for k in keys) and r["threshold"] == threshold


def _reject_cards(r: dict) -> list[tuple[str, str]]:
    """The reject option on the test digits: how many it turned away, and the accuracy
    on those it kept (``evaluate.reject_summary``)."""
    if r["threshold"] is None:
        return [('test digits called "not a digit"', r["note"])]
    kept = pct(r["accuracy_kept"]) if r["accuracy_kept"] is not None else "-"
    return [
        (
            f'test digits called "not a digit" (score < {r["threshold"]:.3g})',
            f"{r['rejected']:,} ({pct(r['rejected_rate'])})",
        ),
        ("accuracy on the digits kept", kept),
    ]


def _newer(derived: Path, source: Path) -> bool:
    """Whether ``derived`` was written after ``source`` last changed (equal times, at the
    clock's resolution, are not)."""
    try:
        return derived.stat().st_mtime_ns > source.stat().st_mtime_ns
    except OSError:
        return False


def write_run_report(run_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """Write ``run_dir/report.html``; evaluates the best checkpoint first if needed."""
    from ..data import load_split
    from ..runs.checkpoint import load_checkpoint
    from ..runs.folder import checkpoint_json, epoch_records, read_config, require_run_folder
    from .evaluate import write_evaluation
    from .plots import write_curves
    from .summary import summarize

    if (Path(run_dir) / "ensemble.json").is_file():
        raise MnistlabError(
            f"{run_dir}: an ensemble, which has no training of its own to report; its "
            "members' runs have reports, and `mnistlab evaluate` evaluates the ensemble"
        )
    run = Path(require_run_folder(run_dir))
    try:
        output_folder(run)
    except OSError as e:
        reason = (e.strerror or "cannot be written").lower()
        raise MnistlabError(
            f"cannot write in the run folder {run} ({reason}); report.html goes there: "
            "make it writable, or copy the run folder somewhere you can write"
        ) from None
    for folder in (run, run / "eval"):  # temps a killed report (or training) left
        remove_stale_temps(folder)
    if not _newer(run / "curves.png", run / "metrics.jsonl"):  # training draws it each epoch
        write_curves(run)
    model, doc = load_checkpoint(checkpoint_json(run))
    eval_json = run / "eval" / "eval.json"
    ev = _read_eval(eval_json)
    if ev is None or not _reject_current(ev, model.meta.reject_threshold):
        # never evaluated, damaged or stale: it is derived, so redo it
        images, labels = load_split(doc.get("dataset", "mnist"), "test", data_dir)
        ev = write_evaluation(model, images, labels, run / "eval")
    cfg = read_config(run)
    history = epoch_records(run)
    summ = summarize(model)
    meta, dataset = model.meta, doc.get("dataset", "mnist")
    errors = round((1 - ev["accuracy"]) * ev["n"])
    chosen = "best epoch (by validation)" if cfg.get("val_size") else "checkpoint epoch"
    cards = [
        ("test accuracy", pct(ev["accuracy"])),
        ("test errors", f"{errors:,} of {ev['n']:,}"),
        ("calibration error (ECE)", pct(ev["ece"])),
        *_reject_cards(ev["reject"]),
        ("parameters", f"{summ.params:,}"),
        ("MFLOPs per image", f"{summ.flops / 1e6:.2f}"),
        ("training time", f"{sum(h['train_seconds'] for h in history):.1f} s"),
        (chosen, str(doc.get("metrics", {}).get("epoch", "?"))),
    ]
    versions = (
        f"mnistlab {doc.get('mnistlab_version', '')} · torch {doc.get('torch_version', '')} "
        f"· saved {doc.get('saved_at', '')}"
    )
    sections = [
        f"<h1>{html.escape(meta.name)} on {html.escape(dataset)}</h1>",
        f"<div class='sub'>Run <code>{html.escape(run.name)}</code> · "
        f"{html.escape(versions)}</div>",
        _cards(cards),
        "<h2>Training curves</h2>",
        img_tag(run / "curves.png", "training curves"),
        table_html(
            ["epoch", "train loss", "train acc", "val acc", "test acc", "lr", "train s"],
            _epoch_rows(history),
        ),
        "<h2>Test set: confusion and per-class scores</h2><div class='grid'>",
        img_tag(run / "eval" / "confusion.png", "confusion matrix"),
        table_html(*class_table(ev["per_class"])),
        "</div><h2>The most confident mistakes</h2>",
        img_tag(run / "eval" / "mistakes.png", "most confident mistakes"),
        "<h2>Predictions</h2>",
        img_tag(run / "eval" / "predictions.png", "prediction grid"),
        "<h2>Calibration</h2>",
        img_tag(run / "eval" / "reliability.png", "reliability diagram"),
        "<h2>Model</h2>",
        f"<p>{html.escape(meta.source)}. Input (N, 1, 28, 28) normalised with mean "
        f"{meta.mean} and std {meta.std}; output: logits for {len(meta.class_names)} classes.</p>",
        table_html(*layer_table(summ)),
        "<h2>Configuration</h2>",
        table_html(["setting", "value"], [[k, v] for k, v in cfg.items()]),
    ]
    page = html_page(f"mnistlab · {run.name}", "\n".join(sections))
    return atomic_write(run / "report.html", lambda p: p.write_text(page, encoding="utf-8"))
