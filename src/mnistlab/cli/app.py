"""The ``mnistlab`` command line. Run ``mnistlab --help`` for the tour."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from .._version import __version__
from .data import data_app
from ..errors import MnistlabError, UsageError

try:  # recent Typer releases vendor click; older ones use the click package
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as click_exc

__all__ = ["app", "main"]

app = typer.Typer(
    name="mnistlab",
    help="Train, compare, understand and use handwritten-digit recognizers.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data_app, name="data")
console = Console(highlight=False, soft_wrap=True)  # long lines stay greppable in logs


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mnistlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train, compare, understand and use handwritten-digit recognizers.

    Start with `mnistlab train`: it trains the default model past 99% test accuracy
    in under ten seconds on a laptop CPU (`--preset fast`: one epoch, about five)
    and leaves everything in runs/.
    """


def _default(field: str) -> str:
    """Help suffix showing TrainConfig's default, so the two never disagree."""
    from ..train import TrainConfig

    value = getattr(TrainConfig(), field)
    return "" if value is None else f" \\[default: {value}]"  # \[ : literal bracket for rich


# Flags that change what is trained; they cannot be combined with --resume.
_RECIPE = {
    "model": typer.Option(
        None, "--model", "-m", help="Model name (see `mnistlab models`)." + _default("model")
    ),
    "ops": typer.Option(
        None, help="Conv/pool implementation for lenet5: torch, im2col or loops (from scratch)."
    ),
    "dataset": typer.Option(None, help="mnist or fashion-mnist." + _default("dataset")),
    "epochs": typer.Option(None, "--epochs", "-e", help="Epochs to train." + _default("epochs")),
    "batch_size": typer.Option(
        None, "--batch-size", "-b", help="Training batch size." + _default("batch_size")
    ),
    "lr": typer.Option(None, help="(Peak) learning rate." + _default("lr")),
    "momentum": typer.Option(None, help="SGD momentum." + _default("momentum")),
    "weight_decay": typer.Option(None, help="Weight decay." + _default("weight_decay")),
    "optimizer": typer.Option(None, help="sgd, adam, adamw or adadelta." + _default("optimizer")),
    "loss": typer.Option(
        None, help="ce (cross-entropy) or mse (MSE on one-hot)." + _default("loss")
    ),
    "augment": typer.Option(
        None,
        help="Batch augmentation: none, affine, elastic, affine+elastic." + _default("augment"),
    ),
    "mean": typer.Option(None, help="Normalisation mean. \\[default: the dataset's]"),
    "std": typer.Option(None, help="Normalisation std. \\[default: the dataset's]"),
    "label_smoothing": typer.Option(
        None, help="Label smoothing for ce." + _default("label_smoothing")
    ),
    "schedule": typer.Option(None, help="none, step, cosine or onecycle." + _default("schedule")),
    "step_size": typer.Option(
        None, help="Epochs between decays (step schedule)." + _default("step_size")
    ),
    "gamma": typer.Option(None, help="Decay factor (step schedule)." + _default("gamma")),
    "val_size": typer.Option(
        None, help="Images held out of train for validation." + _default("val_size")
    ),
    "train_subset": typer.Option(
        None, help="Train on only this many images." + _default("train_subset")
    ),
    "seed": typer.Option(None, help="Random seed: same seed, same metrics." + _default("seed")),
    "log_every": typer.Option(
        None, help="Log running loss/accuracy every N steps." + _default("log_every")
    ),
    "out_dir": typer.Option(None, help="Where run folders go." + _default("out_dir")),
    "run_name": typer.Option(None, "--name", help="Run folder name. \\[default: <time>-<model>]"),
}


@app.command()
def train(
    preset: str = typer.Option(
        None, "--preset", "-p", help="Start from a named recipe; flags override it."
    ),
    list_presets: bool = typer.Option(False, "--list-presets", help="List the presets and exit."),
    model: str = _RECIPE["model"],
    ops: str = _RECIPE["ops"],
    dataset: str = _RECIPE["dataset"],
    epochs: int = _RECIPE["epochs"],
    batch_size: int = _RECIPE["batch_size"],
    lr: float = _RECIPE["lr"],
    momentum: float = _RECIPE["momentum"],
    weight_decay: float = _RECIPE["weight_decay"],
    optimizer: str = _RECIPE["optimizer"],
    loss: str = _RECIPE["loss"],
    label_smoothing: float = _RECIPE["label_smoothing"],
    augment: str = _RECIPE["augment"],
    mean: float = _RECIPE["mean"],
    std: float = _RECIPE["std"],
    schedule: str = _RECIPE["schedule"],
    step_size: int = _RECIPE["step_size"],
    gamma: float = _RECIPE["gamma"],
    val_size: int = _RECIPE["val_size"],
    train_subset: int = _RECIPE["train_subset"],
    seed: int = _RECIPE["seed"],
    log_every: int = _RECIPE["log_every"],
    out_dir: str = _RECIPE["out_dir"],
    run_name: str = _RECIPE["run_name"],
    data_dir: Path = typer.Option(
        None, help="Dataset folder. \\[default: $MNISTLAB_DATA or the user cache]"
    ),
    device: str = typer.Option(None, help="auto, cpu, cuda or mps. \\[default: auto]"),
    threads: int = typer.Option(None, help="CPU threads for torch. \\[default: torch's choice]"),
    channels_last: bool = typer.Option(
        True, help="Keep conv weights and activations NHWC: faster on CPU (benchmarks/results.md)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="One epoch of 2 batches: checks everything runs."
    ),
    resume: Path = typer.Option(None, help="Continue the run in this folder where it stopped."),
) -> None:
    """Train a model and write a run folder: config, metrics, checkpoints and curves.

    With no flags this is the default recipe: the `fast` network, Adam with a
    one-cycle schedule, batch 256, 2 epochs. Ctrl-C stops after the current step and
    saves the state; `--resume RUN` continues exactly where it stopped.
    """
    from .progress import RichReporter
    from ..train import TrainConfig, fit

    if list_presets:
        _print_presets()
        return
    given = {k: v for k, v in locals().items() if k in _RECIPE and v is not None}
    if resume is not None and (given or dry_run or preset):
        extra = ["dry_run"] * dry_run + ["preset"] * bool(preset)
        flags = ", ".join("--" + k.replace("_", "-") for k in [*given, *extra])
        raise UsageError(f"--resume continues the run's saved recipe; drop {flags}")
    if "ops" in given:
        given["model_kwargs"] = {"ops": given.pop("ops")}
    cfg = TrainConfig.from_preset(preset, **given) if preset else TrainConfig(**given)
    if data_dir is not None:
        cfg.data_dir = str(data_dir)
    cfg.threads = threads
    if resume is None:
        cfg.channels_last = channels_last
    cfg.dry_run = dry_run
    reporter = RichReporter(console)
    try:
        result = fit(cfg, resume=resume, reporter=reporter, device_override=device)
    finally:
        reporter.close()
    run = result.run_dir
    if result.interrupted:
        p = result.position
        console.print(
            f"[yellow]interrupted[/] at epoch {p['epoch']}, step {p['step']}; "
            f"state saved in {run}\n"
            f"resume with: mnistlab train --resume {run}"
        )
        raise typer.Exit(130)
    best = result.best
    if best and "test_acc" in best:
        chosen = f"epoch {best['epoch']}" + (
            f", val {best['val_acc']:.2%}" if "val_acc" in best else ""
        )
        total = sum(h["train_seconds"] for h in result.history)
        console.print(
            f"[bold green]test accuracy {best['test_acc']:.2%}[/] "
            f"(best checkpoint: {chosen}; training time {total:.1f} s)"
        )
    from ..analysis.report import write_run_report

    report = write_run_report(run, cfg.data_dir)
    console.print(f"run folder: {run}  (checkpoints, metrics.jsonl, curves.png, eval/)")
    console.print(f"report: {report}")


def _print_presets() -> None:
    from ..train.presets import PRESETS

    table = Table(title="mnistlab train --preset NAME")
    table.add_column("preset")
    table.add_column("recipe")
    for name, values in PRESETS.items():
        table.add_row(name, values["_about"])
    console.print(table)


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="A run folder, or a checkpoint .json/.safetensors."),
    which: str = typer.Option("best", help="best or last checkpoint of a run folder."),
    out: Path = typer.Option(None, help="Folder for the pictures. \\[default: RUN/eval]"),
    data_dir: Path = typer.Option(
        None, help="Dataset folder. \\[default: $MNISTLAB_DATA or the user cache]"
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    batch_size: int = typer.Option(1000, min=1, help="Evaluation batch size."),
) -> None:
    """Test accuracy, per-class precision/recall, confusion matrix and calibration (ECE).

    Also writes confusion.png, mistakes.png (the most confident mistakes),
    predictions.png, reliability.png and eval.json.
    """
    from ..runs.checkpoint import load_checkpoint
    from ..data import get_dataset, load_split
    from ..analysis.evaluate import evaluate_checkpoint
    from .._runtime import pick_device

    if which not in ("best", "last"):
        raise UsageError(f"--which must be best or last, got {which!r}")
    dev = pick_device(device)
    model, doc = load_checkpoint(run / f"{which}.json" if run.is_dir() else run, dev)
    dataset = get_dataset(doc.get("dataset", "mnist"))
    images, labels = load_split(dataset.name, "test", data_dir, dev)
    out_dir = out or ((run if run.is_dir() else run.parent) / "eval")
    res = evaluate_checkpoint(model, images, labels, out_dir, batch_size)
    console.print(
        f"[bold]{res['model']}[/] on {dataset.name} test ({res['n']:,} images): "
        f"loss {res['loss']:.4f}, [bold green]accuracy {res['accuracy']:.2%}[/], "
        f"ECE {res['ece']:.2%}"
    )
    names = list(res["per_class"])
    cm = res["confusion"]
    table = Table(title="Confusion matrix (rows: true class, columns: predicted)")
    table.add_column("true", justify="right")
    for name in names:
        table.add_column(name[:7], justify="right")
    for i, name in enumerate(names):
        cells = [f"[bold]{v}[/]" if i == j else (str(v) if v else "·") for j, v in enumerate(cm[i])]
        table.add_row(name[:7], *cells)
    console.print(table)
    per = Table(title="Per class")
    for col in ("class", "precision", "recall", "F1", "images"):
        per.add_column(col, justify="left" if col == "class" else "right")
    for name, pc in res["per_class"].items():
        per.add_row(
            name, f"{pc['precision']:.2%}", f"{pc['recall']:.2%}", f"{pc['f1']:.2%}",
            f"{pc['support']:,}",
        )  # fmt: skip
    console.print(per)
    console.print(f"pictures and eval.json in {out_dir}")


@app.command()
def inspect(
    run: Path = typer.Argument(..., help="A run folder, or a checkpoint .json/.safetensors."),
    index: int = typer.Option(0, min=0, help="Which test image to feed in."),
    image: Path = typer.Option(None, help="Your own image instead (preprocessed like predict)."),
    out: Path = typer.Option(None, help="Folder for the pictures. \\[default: RUN/inspect]"),
    data_dir: Path = typer.Option(
        None, help="Dataset folder. \\[default: $MNISTLAB_DATA or the user cache]"
    ),
) -> None:
    """Feature maps of every conv layer for one input, and the first layers' kernels."""
    from ..runs.checkpoint import load_checkpoint
    from ..data import load_split
    from ..analysis.inspect import inspect_model

    model, doc = load_checkpoint(run / "best.json" if run.is_dir() else run)
    if image is not None:
        import torch

        from ..serve.preprocess import load_digit

        x, label = torch.from_numpy(load_digit(image)).unsqueeze(0), ""  # (1, 28, 28) uint8
    else:
        images, labels = load_split(doc.get("dataset", "mnist"), "test", data_dir)
        if index >= len(images):
            raise UsageError(f"--index must be below {len(images)}, got {index}")
        x, label = images[index], model.meta.class_names[int(labels[index])]
    out_dir = out or ((run if run.is_dir() else run.parent) / "inspect")
    files = inspect_model(model, x, out_dir, label)
    console.print(f"wrote {len(files)} pictures to {out_dir}: " + ", ".join(f.name for f in files))


@app.command()
def compare(
    entries: list[str] = typer.Argument(
        None,
        help="Models (shared recipe) or presets (--recipe own); NAME:key=value,... "
        "overrides settings, e.g. mlp:loss=ce.",
    ),
    suite: str = typer.Option(None, help="A ready-made comparison (see --list-suites)."),
    list_suites: bool = typer.Option(False, "--list-suites", help="List the suites and exit."),
    recipe: str = typer.Option(None, help="shared (one recipe for all) or own (each a preset)."),
    preset: str = typer.Option(None, "--preset", "-p", help="The shared recipe's preset."),
    seeds: str = typer.Option("0,1", help="Comma-separated seeds; each entry runs once per seed."),
    epochs: int = typer.Option(None, help="Override every entry's epochs."),
    train_subset: int = typer.Option(None, help="Train every entry on this many images."),
    val_size: int = typer.Option(None, help="Override every entry's validation split."),
    out: Path = typer.Option(None, help="Comparison folder. \\[default: runs/compare-<suite>]"),
    data_dir: Path = typer.Option(
        None, help="Dataset folder. \\[default: $MNISTLAB_DATA or the user cache]"
    ),
    device: str = typer.Option(None, help="auto, cpu, cuda or mps. \\[default: auto]"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Two batches per run, to check it all."),
) -> None:
    """Train several models over several seeds and compare accuracy, size, speed and curves.

    Writes comparison.md/.csv/.json, accuracy.png, tradeoff.png, curves.png and
    report.html. Finished runs are kept: run the same command again to continue
    after Ctrl-C, or to add seeds.
    """
    from .progress import RichReporter
    from ..analysis.compare import SUITES, _slug, parse_entry
    from ..analysis.compare import compare as run_compare

    if list_suites:
        table = Table(title="mnistlab compare --suite NAME")
        table.add_column("suite")
        table.add_column("what")
        for name, s in SUITES.items():
            table.add_row(name, f"{s['about']}: {', '.join(s['entries'])}")
        console.print(table)
        return
    if suite is not None:
        if suite not in SUITES:
            raise UsageError(f"unknown suite {suite!r}; choose one of: {', '.join(SUITES)}")
        if entries:
            raise UsageError("give either --suite or a list of entries, not both")
        spec = SUITES[suite]
        entries, recipe, preset = spec["entries"], recipe or spec["recipe"], preset or spec["base"]
    if not entries:
        raise UsageError("name at least two models (or presets), or a --suite")
    recipe = recipe or "shared"
    if recipe not in ("shared", "own"):
        raise UsageError(f"--recipe must be shared or own, got {recipe!r}")
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds must be integers separated by commas, got {seeds!r}") from None
    if not seed_list:
        raise UsageError("--seeds needs at least one seed")
    overrides = {"epochs": epochs, "train_subset": train_subset, "val_size": val_size,
                 "device": device, "dry_run": dry_run or None,
                 "data_dir": str(data_dir) if data_dir else None}  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    parsed = [parse_entry(e, recipe, preset, overrides) for e in entries]
    if out is not None:
        folder = out
    else:
        name = suite or "-vs-".join(_slug(e.label) for e in parsed)
        folder = Path("runs") / f"compare-{name}"
    rows = run_compare(parsed, seed_list, folder, lambda: RichReporter(console), console.print)
    if rows is None:
        console.print(f"[yellow]interrupted[/]; run the same command again to continue ({folder})")
        raise typer.Exit(130)
    from ..analysis.compare import COLUMNS

    table = Table(title=f"comparison · seeds {seeds}")
    for col, _ in COLUMNS:
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(*(f(r) for _, f in COLUMNS))
    console.print(table)
    console.print(f"wrote comparison.md, .csv, .json, accuracy.png, tradeoff.png, curves.png, "
                  f"report.html in {folder}")  # fmt: skip


@app.command()
def predict(
    run: Path = typer.Argument(..., help="A run folder, a checkpoint or an exported .onnx file."),
    images: list[str] = typer.Argument(..., help="Image files, folders, globs, or - for stdin."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    show: Path = typer.Option(None, help="Write a PNG of each original beside what the model saw."),
    device: str = typer.Option("cpu", help="cpu, cuda or mps."),
) -> None:
    """Classify your own images of digits, preprocessed the way MNIST was made.

    Works with any image Pillow reads: dark or light ink, transparent
    backgrounds, photos of paper. A file that cannot be read gets a one-line
    error and the others are still classified (the exit status is then 1).
    """
    import json as json_mod

    from ..serve.predict import expand_inputs, load_predictor, predict_files
    from .._runtime import pick_device

    predictor = load_predictor(run, str(pick_device(device)) if device != "cpu" else "cpu")
    results = predict_files(predictor, expand_inputs(images))
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for r in results:
        if r.error:
            err.print(f"[bold red]error:[/] {r.error}")
    if as_json:
        typer.echo(json_mod.dumps([r.to_json() for r in results], indent=2))
    else:
        for r in results:
            if r.error is None:
                top = ", ".join(f"{k} {v:.1%}" for k, v in r.top3)
                console.print(f"{r.source}: [bold]{r.label}[/] ({r.confidence:.1%})  top 3: {top}")
    ok = [r for r in results if r.error is None]
    if show is not None and ok:
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


@app.command()
def export(
    run: Path = typer.Argument(..., help="A run folder or a checkpoint."),
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
    model, _ = load_checkpoint(run)
    default = (run if run.is_dir() else run.parent) / (
        "model.onnx" if format == "onnx" else "model.pt"
    )
    path = (export_onnx if format == "onnx" else export_torchscript)(model, out or default)
    console.print(f"wrote {path}")


@app.command()
def serve(
    run: Path = typer.Argument(..., help="A run folder, a checkpoint or an exported .onnx file."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; localhost unless you mean it."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port."),
    device: str = typer.Option("cpu", help="cpu, cuda or mps."),
) -> None:
    """Serve the drawing page and the JSON API (POST /api/predict; docs at /docs)."""
    try:
        import uvicorn

        from ..serve.web import create_app
    except ImportError:
        raise MnistlabError("the web app needs its extras: pip install 'mnistlab[web]'") from None
    app_ = create_app(run, device)
    console.print(f"serving {run} on http://{host}:{port}/  (API docs: /docs; Ctrl-C stops)")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="A seconds-long smoke run (for CI)."),
    out: Path = typer.Option(Path("benchmarks/results.md"), help="Markdown file to write."),
    only: str = typer.Option(
        None,
        help="Comma-separated sections: data, time99, inference, scaling, choices. "
        "\\[default: all]",
    ),
    device: str = typer.Option("cpu", help="cpu, cuda, mps or auto: where training runs."),
    data_dir: Path = typer.Option(None, help="MNIST folder. \\[default: the usual lookup]"),
) -> None:
    """Measure speed side by side and write benchmarks/results.md (and .json).

    Data path (device-resident vs per-sample loader), time to 99% (fast vs the
    canonical example, median of 5 seeds), inference (eager, torch.compile, ONNX
    Runtime), scaling (batch size, threads) and trainer choices (fused vs foreach
    vs for-loop optimiser, torch.compile). The full run takes about half an hour
    on a 2-core CPU.
    """
    from ..bench import SECTIONS, run_bench
    from .._runtime import pick_device

    sections = tuple(s.strip() for s in only.split(",") if s.strip()) if only else SECTIONS
    path = run_bench(
        out, quick=quick, sections=sections, device=pick_device(device),
        data_dir=str(data_dir) if data_dir else None, log=console.print,
    )  # fmt: skip
    console.print(f"wrote {path} and {path.with_suffix('.json')}")


@app.command("ops-bench")
def ops_bench(
    batches: str = typer.Option("1,64", help="Comma-separated batch sizes."),
    repeats: int = typer.Option(5, min=1, help="Timed repeats per measurement (median)."),
    threads: int = typer.Option(None, min=1, help="CPU threads for torch."),
) -> None:
    """Time LeNet-5 with the from-scratch layers (loops, im2col) against torch's."""
    import torch

    from ..bench.ops import bench_ops

    if threads:
        torch.set_num_threads(threads)
    try:
        sizes = [int(b) for b in batches.split(",") if b.strip()]
    except ValueError:
        raise UsageError(
            f"--batches must be integers separated by commas, got {batches!r}"
        ) from None
    rows = bench_ops(sizes, repeats)
    table = Table(title=f"LeNet-5 per batch, {torch.get_num_threads()} CPU threads, median of runs")
    for col in ("ops", "batch", "forward ms", "× torch", "fwd+bwd ms", "× torch "):
        table.add_column(col, justify="left" if col == "ops" else "right")
    for r in rows:
        table.add_row(r["ops"], str(r["batch"]), f"{r['forward_ms']:.2f}", f"{r['forward_x']:.1f}",
                      f"{r['train_ms']:.2f}", f"{r['train_x']:.1f}")  # fmt: skip
    console.print(table)
    capped = [r for r in rows if r["measured_batch"] < r["batch"]]
    if capped:
        console.print(
            f"loops: timed on {capped[0]['measured_batch']} images per call and scaled to the "
            "batch (its cost grows linearly with the batch); fewer repeats."
        )


@app.command()
def report(
    run: Path = typer.Argument(..., help="A run folder."),
    data_dir: Path = typer.Option(
        None, help="Dataset folder. \\[default: $MNISTLAB_DATA or the user cache]"
    ),
) -> None:
    """(Re)write a run's self-contained report.html: curves, confusion, mistakes, calibration."""
    from ..analysis.report import write_run_report

    if not (run / "config.json").is_file():
        raise MnistlabError(f"{run}: not a run folder (no config.json); check the path")
    console.print(f"report: {write_run_report(run, data_dir)}")


@app.command()
def summary(
    model: str = typer.Argument(..., help="A model name, a run folder or a checkpoint file."),
) -> None:
    """Per-layer output shapes, parameters and FLOPs, with totals per image."""
    from ..runs.checkpoint import load_checkpoint
    from ..models import create_model
    from ..analysis.summary import summarize

    net = load_checkpoint(model)[0] if Path(model).exists() else create_model(model)
    s = summarize(net, tuple(net.meta.input_size))
    table = Table(title=f"{s.name}: input (N, {', '.join(map(str, net.meta.input_size))})")
    for col in ("layer", "type", "output shape", "parameters", "MFLOPs"):
        table.add_column(col, justify="left" if col in ("layer", "type") else "right")
    for r in s.rows:
        shape = "(N, " + ", ".join(map(str, r.output_shape[1:])) + ")" if r.output_shape else "-"
        flops = f"{r.flops / 1e6:.3f}" if r.flops else "-"
        table.add_row(r.name, r.kind, shape, f"{r.params:,}" if r.params else "-", flops)
    console.print(table)
    console.print(
        f"parameters: {s.params:,} ({s.trainable:,} trainable; {s.params * 4 / 1024:.1f} KiB "
        f"as float32) · per image: {s.flops / 1e6:.3f} MFLOPs = {s.macs / 1e6:.3f} M "
        "multiply-adds (convolutions and matrix products)"
    )


@app.command("models")
def models_cmd() -> None:
    """List the registered models with their parameter counts and sources."""
    from ..models import count_params, create_model, list_models, model_entry

    table = Table(title="mnistlab models")
    for col in ("name", "family", "parameters", "source"):
        table.add_column(col, justify="right" if col == "parameters" else "left")
    for name in list_models():
        entry = model_entry(name)
        table.add_row(name, entry.family, f"{count_params(create_model(name)):,}", entry.source)
    console.print(table)


def _fail(message: str, code: int) -> int:
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point: every error becomes one line on stderr and a non-zero exit status."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="mnistlab", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click_exc.NoArgsIsHelpError:
        return 0  # the help was already printed
    except click_exc.UsageError as e:
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        return _fail(f"{e.format_message()}{hint}", 2)
    except click_exc.ClickException as e:
        return _fail(e.format_message(), e.exit_code)
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return _fail("interrupted", 130)
    except MnistlabError as e:
        return _fail(e.cli_message(), e.exit_code)
    except BrokenPipeError:
        return 1
    except Exception as e:  # a bug: still one line, with the way to see more
        if os.environ.get("MNISTLAB_DEBUG"):
            raise
        return _fail(
            f"unexpected {type(e).__name__}: {e} (set MNISTLAB_DEBUG=1 for the traceback)", 1
        )


def run() -> None:
    sys.exit(main())
