"""Using a trained model: ``predict``, ``export`` and ``serve``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import MnistlabError, UsageError
from .options import (
    BACKEND,
    INFERENCE_DEVICE,
    RUN_OR_CHECKPOINT,
    RUN_OR_MODEL,
    console,
    pick_device,
    resolve_run,
)

__all__ = ["export", "predict", "serve"]

PROGRESS_FROM = 257  # a progress bar on stderr from this many files (more than one batch)


def predict(
    run: Path = RUN_OR_MODEL,
    images: list[str] = typer.Argument(..., help="Image files, folders, globs, or - for stdin."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    show: Path = typer.Option(None, help="Write a PNG of each original beside what the model saw."),
    number: bool = typer.Option(
        False, "--number", help="Read each image as a whole number (a row of digits)."
    ),
    tta: bool = typer.Option(
        False, "--tta", help="Test-time augmentation: average 7 shifted and turned views."
    ),
    accept_all: bool = typer.Option(
        False, "--accept-all", help='Always answer a digit, never "not a digit".'
    ),
    device: str = INFERENCE_DEVICE,
    backend: str = BACKEND,
) -> None:
    """Classify your own images of digits, preprocessed the way MNIST was made.

    Works with any image Pillow reads: dark or light ink, transparent
    backgrounds, photos of paper. A file that cannot be read gets a one-line
    error and the others are still classified (the exit status is then 1).
    An image whose digit score is below the model's reject threshold is
    "not a digit" (an answer: the exit status stays 0); --accept-all forces a digit.
    Results are printed as they come; long lists show a progress bar on stderr.
    """
    from .._io import output_file
    from ..serve.predict import expand_inputs, iter_predictions, load_predictor

    sources = expand_inputs(images)
    if show is not None:
        show = output_file(show, (".png",), inputs=sources, option="show")
        _check_writable(show, "show")
    device = str(pick_device(device))  # "cpu" without loading torch
    predictor = load_predictor(run, device, backend, tta=tta)
    if accept_all:  # every image a digit; the digit score is still worked out and shown
        predictor.reject_threshold = None
    if number:
        _predict_numbers(predictor, sources, as_json, show)
        return
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    kept, n, failed = [], 0, 0  # kept: (source, answer, digit), for --show only
    with _progress(err, len(sources)) as advance:
        for r in iter_predictions(predictor, sources):
            if as_json:  # the same text as json.dumps(list, indent=2), one item at a time
                item = json.dumps(r.to_json(), indent=2).replace("\n", "\n  ")
                sys.stdout.write(("[\n  " if n == 0 else ",\n  ") + item)
                sys.stdout.flush()
            n += 1
            advance()
            if r.error:
                failed += 1
                err.print(f"[bold red]error:[/] {escape(r.error)}")
            elif not as_json:
                console.print(_answer_line(r))
            if show is not None and r.error is None:
                answer = f"{r.label} ({r.confidence:.0%})" if not r.not_digit else "not a digit"
                kept.append((r.source, answer, r.digit))
    if as_json:
        sys.stdout.write("\n]\n" if n else "[]\n")
        sys.stdout.flush()
    if show is not None and kept:
        _write_show(predictor.name, kept, show)
    if failed:
        raise typer.Exit(1)


def _answer_line(r) -> str:
    """One result as printed: ``name: 7 (98.1%)  top 3: ...``, or ``name: not a digit
    (digit score 3%; best guess 2)``."""
    from ..serve.predict import shown

    name = escape(shown(r.source))
    if r.not_digit:
        guess = escape(shown(r.best_guess))
        return f"{name}: [bold]not a digit[/] (digit score {r.digit_score:.0%}; best guess {guess})"
    top = ", ".join(f"{escape(shown(k))} {v:.1%}" for k, v in r.top3)
    # the digit score is the top probability today (models/_reject.py): said only where
    # it differs, or every line would print the same number twice
    score = (
        f"; digit score {r.digit_score:.1%}"
        if f"{r.digit_score:.1%}" != f"{r.confidence:.1%}"
        else ""
    )
    return f"{name}: [bold]{escape(shown(r.label))}[/] ({r.confidence:.1%}{score})  top 3: {top}"


def _predict_numbers(predictor, sources: list[str], as_json: bool, show: Path | None) -> None:
    """``predict --number``: one number per image, in order; errors one line each."""
    from ..serve.numbers import draw_number, read_number
    from ..serve.predict import shown
    from ..serve.preprocess import PreprocessError, open_image

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    items, drawn, failed = [], [], 0
    for src in sources:
        name = "stdin" if src == "-" else src
        try:
            img = open_image(sys.stdin.buffer.read() if src == "-" else src, name)
            result = read_number(predictor, img, name)
        except PreprocessError as e:
            failed += 1
            err.print(f"[bold red]error:[/] {escape(shown(str(e)))}")
            items.append({"file": src, "error": str(e)})
            continue
        items.append({"file": src, **result.to_json()})
        if show is not None:
            drawn.append(draw_number(img, result))
        if as_json:
            continue
        if result.problem:  # an answer, not an error: the exit status stays 0
            console.print(
                f"{escape(shown(src))}: cannot read this row: {escape(shown(result.problem))}"
            )
            continue
        each = ", ".join(f"{escape(shown(d.label))} {d.confidence:.1%}" for d in result.digits)
        skipped = f"  skipped: {len(result.skipped)} marks" if result.skipped else ""
        console.print(
            f"{escape(shown(src))}: [bold]{escape(shown(result.text))}[/] "
            f"({result.confidence:.1%})  digits: {each}{skipped}"
        )
    if as_json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
    if show is not None and drawn:
        from .._io import atomic_write
        from ..serve.show import stacked

        sheet = stacked(drawn)
        with _writing(show, "show"):  # as --show without --number: one line on failure
            atomic_write(show, lambda p: sheet.save(p, "PNG"))
    if failed:
        raise typer.Exit(1)


@contextlib.contextmanager
def _progress(err: Console, total: int):
    """A transient progress bar on stderr for a long list, only where stderr is a
    terminal; yields the function to call after each file."""
    if total < PROGRESS_FROM or not err.is_terminal:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    # stdout is redirected through the bar only where it is a terminal too (else the
    # results, JSON included, go to stdout untouched)
    bar = Progress(
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        redirect_stdout=sys.stdout.isatty(),
        redirect_stderr=False,
    )
    with bar:
        task = bar.add_task("predict", total=total)
        yield lambda: bar.advance(task)


def _check_writable(path: Path, option: str) -> None:
    """Refuse, before any work, an output whose folder cannot be made or written."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(
            f"{path}: {folder} is a file, not a folder; choose another path", option=option
        )
    if not os.access(folder, os.W_OK):
        raise MnistlabError(
            f"cannot write {path}: {folder} is not writable; choose a folder you can write to",
            option=option,
        )


@contextlib.contextmanager
def _writing(path: Path, option: str):
    """Turn an OS error while writing ``path`` (whose message may name only a temp file)
    into one line naming ``path``; say so where a missing folder was created."""
    created = not path.parent.exists()
    try:
        yield
    except OSError as e:
        raise MnistlabError(
            f"cannot write {path} ({e.strerror or e}); choose a folder you can write to",
            option=option,
        ) from None
    if created:
        console.print(f"created folder {path.parent}")


def _write_show(name: str, kept: list, show: Path) -> None:
    import numpy as np

    from .._io import atomic_write
    from ..serve.preprocess import PreprocessError, for_display, open_image
    from ..serve.show import show_pairs

    originals = []
    for source, _, digit in kept:
        try:
            originals.append(
                np.asarray(for_display(open_image(source))) if source != "-" else digit
            )
        except PreprocessError:  # changed since it was read: show what the model saw
            originals.append(digit)
    titles = [f"{name}: {answer}" for _, answer, _ in kept]
    sheet = show_pairs(originals, [k[2] for k in kept], titles)
    with _writing(show, "show"):
        atomic_write(show, lambda p: sheet.save(p, "PNG"))
    console.print(f"wrote {escape(str(show))}")


def export(
    run: Path = RUN_OR_CHECKPOINT,
    format: str = typer.Option("onnx", "--format", "-f", help="onnx or torchscript."),
    out: Path = typer.Option(
        None, "--out", "-o", help="File to write. \\[default: RUN/model.onnx]"
    ),
) -> None:
    """Export the best checkpoint to ONNX or TorchScript, metadata included."""
    from .._io import output_file
    from ..runs.checkpoint import load_checkpoint
    from ..serve.export import export_onnx, export_torchscript

    if format not in ("onnx", "torchscript"):
        raise UsageError(f"--format must be onnx or torchscript, got {format!r}")
    onnx = format == "onnx"
    checkpoint, path = resolve_run(run, out, "model.onnx" if onnx else "model.pt")
    inputs = [checkpoint.with_suffix(".json"), checkpoint.with_suffix(".safetensors")]
    path = output_file(path, (".onnx",) if onnx else (".pt", ".pth"), inputs, option="out")
    _check_writable(path, "out")
    model, doc = load_checkpoint(checkpoint)
    with _writing(path, "out"):
        if onnx and path.resolve() == checkpoint.with_suffix(".onnx").resolve():
            # the run's own ONNX file: its new hash goes into the checkpoint's JSON
            from .._io import atomic_write_json
            from ..runs.folder import json_safe
            from ..serve.export import export_beside

            written = export_beside(model, checkpoint, doc)
            atomic_write_json(checkpoint.with_suffix(".json"), json_safe(doc))
        else:
            written = (export_onnx if onnx else export_torchscript)(model, path)
    console.print(f"wrote {escape(str(written))}")


def serve(
    run: Path = RUN_OR_MODEL,
    host: str = typer.Option("127.0.0.1", help="Interface to bind; localhost unless you mean it."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port."),
    device: str = INFERENCE_DEVICE,
    workers: int = typer.Option(
        1, min=1, max=64, help="Worker processes; one per core serves the most (docs/serving.md)."
    ),
    timeout: float = typer.Option(
        30.0,
        min=1,
        max=3600,
        help="Seconds a request body may take to arrive (then 408), and that requests in "
        "flight get to finish when the server stops.",
    ),
    access_log: bool = typer.Option(
        False, "--access-log/--no-access-log", help="Log one line per request."
    ),
    backend: str = BACKEND,
    accept_all: bool = typer.Option(
        False, "--accept-all", help='Always answer a digit, never "not a digit".'
    ),
) -> None:
    """Serve the drawing page and the JSON API (POST /api/predict; docs at /docs).

    SIGTERM or Ctrl-C stops taking connections, lets requests in flight finish, and
    exits. GET /healthz says the server is up; GET /readyz that its model answers."""
    try:
        import uvicorn  # noqa: F401

        from ..serve.web.server import ServeSettings, run_server
    except ImportError:
        raise MnistlabError("the web app needs its extras: pip install 'mnistlab[web]'") from None
    if backend not in ("auto", "torch", "onnx"):
        raise UsageError(f"--backend must be auto, torch or onnx, got {backend!r}")
    device = str(pick_device(device))  # "cpu" without loading torch
    if workers > 1 and device != "cpu":
        raise UsageError("--workers above 1 is for the CPU; one process drives a GPU best")
    sock = _bind(host, port)  # before anything is said: the port may be taken
    settings = ServeSettings(str(run), device, workers, timeout, access_log, backend, accept_all)

    def ready() -> None:
        many = f", {workers} workers" if workers > 1 else ""
        console.print(
            f"serving {run} on http://{host}:{port}/{many}  (API docs: /docs; Ctrl-C stops)"
        )

    try:
        run_server(sock, settings, on_ready=ready)
    finally:
        sock.close()


def _bind(host: str, port: int):
    """A listening socket on ``host:port``, or one line saying why not and what to do."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(
            f"cannot use host {host!r} ({e.strerror}); give an address or a name", option="host"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            why = f"port {port} is in use on {host}; pass --port with a free one"
        elif e.errno == errno.EACCES:
            why = f"port {port} needs privileges on {host}; pass --port above 1023"
        else:
            why = f"cannot listen on {host}:{port} ({e.strerror}); pass another --host or --port"
        raise MnistlabError(why) from None
    sock.set_inheritable(True)
    return sock
