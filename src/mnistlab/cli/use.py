"""Using a trained model: ``predict``, ``export`` and ``serve``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from ..errors import MnistlabError, UsageError
from .options import INFERENCE_DEVICE, RUN_OR_CHECKPOINT, RUN_OR_MODEL, console, resolve_run

__all__ = ["export", "predict", "serve"]


def predict(
    run: Path = RUN_OR_MODEL,
    images: list[str] = typer.Argument(..., help="Image files, folders, globs, or - for stdin."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    show: Path = typer.Option(None, help="Write a PNG of each original beside what the model saw."),
    device: str = INFERENCE_DEVICE,
) -> None:
    """Classify your own images of digits, preprocessed the way MNIST was made.

    Works with any image Pillow reads: dark or light ink, transparent
    backgrounds, photos of paper. A file that cannot be read gets a one-line
    error and the others are still classified (the exit status is then 1).
    """
    from .._runtime import pick_device
    from ..serve.predict import expand_inputs, load_predictor, predict_files

    predictor = load_predictor(run, str(pick_device(device)) if device != "cpu" else "cpu")
    results = predict_files(predictor, expand_inputs(images))
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for r in results:
        if r.error:
            err.print(f"[bold red]error:[/] {r.error}")
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        for r in results:
            if r.error is None:
                top = ", ".join(f"{k} {v:.1%}" for k, v in r.top3)
                console.print(f"{r.source}: [bold]{r.label}[/] ({r.confidence:.1%})  top 3: {top}")
    ok = [r for r in results if r.error is None]
    if show is not None and ok:
        import numpy as np

        from ..analysis.plots import plot_pairs
        from ..serve.preprocess import for_display, open_image

        originals = [
            np.asarray(for_display(open_image(r.source))) if r.source != "-" else r.digit
            for r in ok
        ]
        titles = [f"{predictor.name}: {r.label} ({r.confidence:.0%})" for r in ok]
        plot_pairs(originals, [r.digit for r in ok], titles, show)
        console.print(f"wrote {show}")
    if len(ok) < len(results):
        raise typer.Exit(1)


def export(
    run: Path = RUN_OR_CHECKPOINT,
    format: str = typer.Option("onnx", "--format", "-f", help="onnx or torchscript."),
    out: Path = typer.Option(
        None, "--out", "-o", help="File to write. \\[default: RUN/model.onnx]"
    ),
) -> None:
    """Export the best checkpoint to ONNX or TorchScript, metadata included."""
    from ..runs.checkpoint import load_checkpoint
    from ..serve.export import export_onnx, export_torchscript

    if format not in ("onnx", "torchscript"):
        raise UsageError(f"--format must be onnx or torchscript, got {format!r}")
    onnx = format == "onnx"
    checkpoint, path = resolve_run(run, out, "model.onnx" if onnx else "model.pt")
    model, _ = load_checkpoint(checkpoint)
    console.print(f"wrote {(export_onnx if onnx else export_torchscript)(model, path)}")


def serve(
    run: Path = RUN_OR_MODEL,
    host: str = typer.Option("127.0.0.1", help="Interface to bind; localhost unless you mean it."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port."),
    device: str = INFERENCE_DEVICE,
) -> None:
    """Serve the drawing page and the JSON API (POST /api/predict; docs at /docs)."""
    try:
        import uvicorn

        from ..serve.web import create_app
    except ImportError:
        raise MnistlabError("the web app needs its extras: pip install 'mnistlab[web]'") from None
    web_app = create_app(run, device)
    console.print(f"serving {run} on http://{host}:{port}/  (API docs: /docs; Ctrl-C stops)")
    uvicorn.run(web_app, host=host, port=port, log_level="warning")
