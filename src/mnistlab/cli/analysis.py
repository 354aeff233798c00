"""Understanding models and runs: ``evaluate``, ``inspect``, ``compare``, ``report``,
``summary`` and ``models``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .._io import output_file, output_folder
from ..errors import MnistlabError, UsageError
from .options import DATA_DIR, DEVICE, RUN_FOLDER, RUN_OR_CHECKPOINT, console, resolve_run, table

__all__ = ["compare", "evaluate", "inspect", "models", "report", "summary"]


def evaluate(
    run: Path = RUN_OR_CHECKPOINT,
    which: str = typer.Option("best", help="best or last checkpoint of a run folder."),
    # text, not Path: Path('') is '.', and an empty --out would write into the current folder
    out: str = typer.Option(None, help="Folder for the pictures. \\[default: RUN/eval]"),
    data_dir: Path = DATA_DIR,
    device: str = DEVICE,
    batch_size: int = typer.Option(1000, min=1, help="Evaluation batch size."),
    suite: str = typer.Option(
        None, help="realworld: digits that are not MNIST, read as `predict` reads images."
    ),
    split: str = typer.Option(
        None,
        help="With --suite realworld: dev (to choose variants) or test (to report). "
        "\\[default: test]",
    ),
    per_set: int = typer.Option(None, min=1, help="With --suite realworld: images per set."),
    show: Path = typer.Option(None, help="With --suite realworld: a PNG of examples per set."),
    tta: bool = typer.Option(
        False, "--tta", help="Test-time augmentation: average 7 shifted and turned views."
    ),
) -> None:
    """Test accuracy, per-class precision/recall, confusion matrix and calibration (ECE).

    With the model's reject threshold: how many test digits it calls "not a digit",
    the accuracy counting them wrong and the accuracy on the digits kept.
    Also writes confusion.png, mistakes.png (the most confident mistakes),
    predictions.png, reliability.png and eval.json. With --suite realworld:
    accuracy per real-world set instead, written to realworld.json.
    """
    if out is not None and not out.strip():
        raise UsageError("needs a folder; leave the flag out for RUN/eval", option="out")
    out = Path(out) if out is not None else None
    if suite is not None or split is not None or per_set is not None or show is not None:
        return _evaluate_suite(run, which, out, data_dir, device, suite, split, per_set, show, tta)
    from .._runtime import pick_device
    from ..analysis.evaluate import write_evaluation
    from ..analysis.tables import class_table
    from ..data import get_dataset, load_split
    from ..runs.checkpoint import load_checkpoint

    checkpoint, out_dir = resolve_run(run, out, "eval", which)
    dev = pick_device(device or "auto")
    model, doc = load_checkpoint(checkpoint, dev)
    if tta:
        from ..models import with_tta

        model = with_tta(model)
    out_dir = _writable(out_dir, given=out is not None)
    dataset = get_dataset(doc.get("dataset", "mnist"))
    images, labels = load_split(dataset.name, "test", data_dir, dev)
    res = write_evaluation(model, images, labels, out_dir, batch_size)
    uncalibrated = (
        f" (uncalibrated {res['ece_uncalibrated']:.2%})" if res["temperature"] != 1 else ""
    )
    console.print(
        f"[bold]{res['model']}[/]{' with TTA' * tta} on {dataset.name} test ({res['n']:,} images): "
        f"loss {res['loss']:.4f}, [bold green]accuracy {res['accuracy']:.2%}[/], "
        f"ECE {res['ece']:.2%}{uncalibrated}"
    )
    console.print(_reject_line(res["reject"]))
    names = list(res["per_class"])
    cm = res["confusion"]
    confusion = Table(title="Confusion matrix (rows: true class, columns: predicted)")
    confusion.add_column("true", justify="right")
    for name in names:
        confusion.add_column(name[:7], justify="right")
    for i, name in enumerate(names):
        cells = [f"[bold]{v}[/]" if i == j else (str(v) if v else "·") for j, v in enumerate(cm[i])]
        confusion.add_row(name[:7], *cells)
    console.print(confusion)
    console.print(table("Per class", *class_table(res["per_class"])))
    console.print(f"pictures and eval.json in {out_dir}")


def _reject_line(r: dict) -> str:
    """``write_evaluation``'s reject summary in one line."""
    if r["threshold"] is None:
        return f"not a digit: none; {r['note']}"
    kept = f"{r['accuracy_kept']:.2%}" if r["accuracy_kept"] is not None else "-"
    return (
        f"not a digit: {r['rejected']:,} ({r['rejected_rate']:.2%}) at digit score below "
        f"{r['threshold']:.3g}; accuracy {r['accuracy_rejected_wrong']:.2%} counting them "
        f"wrong, {kept} on the {r['kept']:,} kept"
    )


def _evaluate_suite(run, which, out, data_dir, device, suite, split, per_set, show, tta) -> None:
    """``evaluate --suite realworld``: accuracy on each real-world set, realworld.json."""
    if suite is None:
        raise UsageError("--split, --per-set and --show need --suite realworld")
    if suite != "realworld":
        raise UsageError(f"must be realworld, got {suite!r}", option="suite")
    split = split or "test"
    if split not in ("dev", "test"):
        raise UsageError(f"must be dev or test, got {split!r}", option="split")
    from ..analysis.realworld import write_realworld, write_realworld_examples
    from ..serve.predict import load_predictor
    from .options import pick_device

    checkpoint, out_dir = resolve_run(run, out, "eval", which)
    if show is not None:
        show = output_file(show, (".png",), [checkpoint], option="show")
    predictor = load_predictor(checkpoint, str(pick_device(device or "auto")), tta=tta)
    out_dir = _writable(out_dir, given=out is not None)
    rows, path = write_realworld(predictor, out_dir, split, per_set or 500, 0, data_dir, checkpoint)
    body = [[r["set"], f"{r['n']:,}", f"{r['accuracy']:.2%}", f"{r['rejected']:,}"] for r in rows]
    header = ["set", "images", "accuracy", "refused"]
    console.print(table(f"{predictor.name} on real-world digits ({split} split)", header, body))
    console.print(f"realworld.json in {path.parent}")
    if show is not None:
        shown = write_realworld_examples(show, split, 8, 0, data_dir, predictor)
        console.print(f"examples: {shown}")


def _writable(folder: Path, given: bool) -> Path:
    """The folder a command writes its pictures to, created and checked before the work.
    The default one is inside the run: if that cannot be written, say how to write elsewhere.
    """
    try:
        return output_folder(folder, option="out")
    except OSError as e:
        if given:
            raise  # it names the folder; the CLI says what to do
        reason = (e.strerror or "cannot be written").lower()
        raise MnistlabError(
            f"cannot write {folder} ({reason}); give --out a folder you can write"
        ) from None


def inspect(
    run: Path = RUN_OR_CHECKPOINT,
    index: int = typer.Option(0, min=0, help="Which test image to feed in."),
    image: Path = typer.Option(None, help="Your own image instead (preprocessed like predict)."),
    # text, not Path, as for evaluate: an empty --out must not mean the current folder
    out: str = typer.Option(None, help="Folder for the pictures. \\[default: RUN/inspect]"),
    data_dir: Path = DATA_DIR,
) -> None:
    """Feature maps of every conv layer for one input, and the first layers' kernels."""
    from ..analysis.inspect import inspect_model
    from ..data import load_split
    from ..runs.checkpoint import load_checkpoint

    if out is not None and not out.strip():
        raise UsageError("needs a folder; leave the flag out for RUN/inspect", option="out")
    out = Path(out) if out is not None else None
    checkpoint, out_dir = resolve_run(run, out, "inspect")
    model, doc = load_checkpoint(checkpoint)
    out_dir = _writable(out_dir, given=out is not None)
    if image is not None:
        import torch

        from ..serve.preprocess import load_digit

        x, label = torch.from_numpy(load_digit(image)).unsqueeze(0), ""  # (1, 28, 28) uint8
    else:
        images, labels = load_split(doc.get("dataset", "mnist"), "test", data_dir)
        if index >= len(images):
            raise UsageError(f"--index must be below {len(images)}, got {index}")
        x, label = images[index], model.meta.class_names[int(labels[index])]
    if model.meta.name == "ensemble":  # each member's layers, in a folder of its own
        for i, member in enumerate(model.members):
            where = _writable(out_dir / f"member{i}-{member.meta.name}", given=out is not None)
            files = inspect_model(member, x, where, label)
            console.print(f"member {i} ({member.meta.name}): {len(files)} pictures in {where}")
        return
    files = inspect_model(model, x, out_dir, label)
    console.print(f"wrote {len(files)} pictures to {out_dir}: " + ", ".join(f.name for f in files))


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
    augment: str = typer.Option(
        None, help="Override every entry's augmentation (none: MNIST as it is)."
    ),
    train_subset: int = typer.Option(None, help="Train every entry on this many images."),
    val_size: int = typer.Option(None, help="Override every entry's validation split."),
    out: Path = typer.Option(None, help="Comparison folder. \\[default: runs/compare-<suite>]"),
    data_dir: Path = DATA_DIR,
    device: str = DEVICE,
    dry_run: bool = typer.Option(False, "--dry-run", help="Two batches per run, to check it all."),
    jobs: int = typer.Option(
        1, min=1, max=64, help="Runs trained at once, as processes sharing the cores fairly."
    ),
    shard: str = typer.Option(
        None, help="i/n: train only this machine's share of the runs (0 <= i < n)."
    ),
    report: bool = typer.Option(
        False, "--report", help="Merge: the arguments are comparison folders (the shards)."
    ),
) -> None:
    """Train several models over several seeds and compare accuracy, size, speed and curves.

    Writes comparison.md/.csv/.json, accuracy.png, tradeoff.png, curves.png and
    report.html. Finished runs are kept: run the same command again to continue
    after Ctrl-C, or to add seeds. To spread it over machines, run the same command
    with --shard 0/N ... N-1/N, then `mnistlab compare --report DIR...` (docs/distributed.md).
    """
    from ..analysis.compare import (
        SUITES,
        check_entries_and_seeds,
        parse_entry,
        slug,
    )
    from ..analysis.compare import compare as run_compare
    from ..analysis.sweep import merge, parse_shard
    from .progress import RichReporter

    if report:
        if not entries:
            raise UsageError("--report takes the comparison folders to merge")
        folders = [Path(e) for e in entries]
        rows, seed_list, folder = merge(folders, out, device or "auto", console.print)
        _show_comparison(rows, seed_list, folder)
        return
    shard_of = parse_shard(shard)
    if list_suites:
        rows = [[name, f"{s['about']}: {', '.join(s['entries'])}"] for name, s in SUITES.items()]
        console.print(table("mnistlab compare --suite NAME", ["suite", "what"], rows, left=2))
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
    check_entries_and_seeds(list(entries), seed_list)  # before any training, and exit 2
    overrides = {
        "epochs": epochs,
        "augment": augment,
        "train_subset": train_subset,
        "val_size": val_size,
        "device": device,
        "dry_run": dry_run or None,
        "data_dir": str(data_dir) if data_dir else None,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    parsed = [parse_entry(e, recipe, preset, overrides) for e in entries]
    name = suite or "-vs-".join(slug(e.label) for e in parsed)
    folder = out if out is not None else Path("runs") / f"compare-{name}"
    rows = run_compare(
        parsed, seed_list, folder, lambda: RichReporter(console), console.print, jobs, shard_of
    )
    if rows is None:
        console.print(f"[yellow]interrupted[/]; run the same command again to continue ({folder})")
        raise typer.Exit(130)
    if not rows:  # a shard, the others not all done here
        console.print(f"merge the shards with: mnistlab compare --report {folder} ...")
        return
    _show_comparison(rows, seed_list, folder)


def _show_comparison(rows: list[dict], seed_list: list[int], folder: Path) -> None:
    from ..analysis.compare import comparison_table

    shown = ", ".join(map(str, seed_list))
    console.print(table(f"comparison · seeds {shown}", *comparison_table(rows)))
    console.print(
        "wrote comparison.md, .csv, .json, accuracy.png, tradeoff.png, curves.png, "
        f"report.html in {folder}"
    )


def report(run: Path = RUN_FOLDER, data_dir: Path = DATA_DIR) -> None:
    """(Re)write a run's self-contained report.html: curves, confusion, mistakes, calibration."""
    from ..analysis.report import write_run_report

    console.print(f"report: {write_run_report(run, data_dir)}")  # refuses a non-run folder


def summary(
    model: str = typer.Argument(..., help="A model name, a run folder or a checkpoint file."),
) -> None:
    """Per-layer output shapes, parameters and FLOPs, with totals per image."""
    from ..analysis.summary import summarize
    from ..analysis.tables import layer_table
    from ..models import create_model
    from ..runs.checkpoint import load_checkpoint
    from ..runs.folder import checkpoint_json

    net = (
        load_checkpoint(checkpoint_json(model))[0] if Path(model).exists() else create_model(model)
    )
    s = summarize(net, tuple(net.meta.input_size))
    title = f"{s.name}: input (N, {', '.join(map(str, net.meta.input_size))})"
    console.print(table(title, *layer_table(s), left=2))
    console.print(
        f"parameters: {s.params:,} ({s.trainable:,} trainable; {s.params * 4 / 1024:.1f} KiB "
        f"as float32) · per image: {s.flops / 1e6:.3f} MFLOPs = {s.macs / 1e6:.3f} M "
        "multiply-adds (convolutions and matrix products)"
    )


def models() -> None:
    """List the registered models with their parameter counts and sources."""
    from ..models import count_params, create_model, list_models, model_entry

    listing = Table(title="mnistlab models")
    for column in ("name", "family", "parameters", "source"):
        listing.add_column(column, justify="right" if column == "parameters" else "left")
    for name in list_models():
        entry = model_entry(name)
        listing.add_row(name, entry.family, f"{count_params(create_model(name)):,}", entry.source)
    console.print(listing)
