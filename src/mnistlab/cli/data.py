"""``mnistlab data ...``: download, verify, describe and look at the datasets."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table

from ..errors import MnistlabError
from .options import DATA_DIR, console

__all__ = ["data_app"]

data_app = typer.Typer(
    help="Download, verify, describe and look at the datasets.", no_args_is_help=True
)

DATASET = typer.Option("mnist", "--dataset", "-d", help="mnist or fashion-mnist.")


@data_app.command()
def download(dataset: str = DATASET, data_dir: Path = DATA_DIR) -> None:
    """Download the four IDX files, verified by MD5, into the data folder."""
    from ..data import download_dataset, get_dataset, mirrors_for

    info = get_dataset(dataset)
    console.print(f"mirrors: {', '.join(mirrors_for(info))}")
    columns = TextColumn("{task.description}"), BarColumn(), DownloadColumn()
    with Progress(*columns, console=console, transient=True) as progress:

        def bar(name):
            task = progress.add_task(name, total=None)
            return lambda done, total: progress.update(task, completed=done, total=total)

        dest = download_dataset(info, data_dir, log=console.print, progress=bar)
    console.print(f"[green]{info.name} is ready in {dest}[/]")


@data_app.command()
def verify(dataset: str = DATASET, data_dir: Path = DATA_DIR) -> None:
    """Check the files' content checksums and shapes; exit 1 if any is bad or missing."""
    from ..data import locate, verify_dir

    lookup = locate(dataset, data_dir)  # the folder the loader reads
    for folder, other in lookup.skipped:
        console.print(f"[yellow]skipped {folder}: it holds {other}[/]")
    if lookup.folder is None:
        raise lookup.error()
    report = verify_dir(lookup.info, lookup.folder)
    for name, status in report.items():
        mark = "[green]ok[/]" if status == "ok" else f"[red]{status}[/]"
        console.print(f"{name}: {mark}")
    bad = [n for n, s in report.items() if s not in ("ok", "missing")]
    if bad:
        raise MnistlabError(
            f"{len(bad)} of {len(report)} files in {lookup.folder} failed verification "
            "(see above for what to do)"
        )
    if not lookup.complete:
        raise lookup.error()
    console.print(
        f"[green]all {len(report)} files of {lookup.info.name} verified in {lookup.folder}[/]"
    )


@data_app.command()
def info(dataset: str = DATASET, data_dir: Path = DATA_DIR) -> None:
    """Describe a dataset: classes, normalisation, where its files are, label counts."""
    import numpy as np

    from ..data import locate, read_split

    lookup = locate(dataset, data_dir)  # the folder the loader reads
    ds = lookup.info
    console.print(f"[bold]{ds.name}[/]: {ds.title}")
    console.print(f"source: {ds.source}")
    console.print(f"normalisation: mean {ds.mean}, std {ds.std} (of pixels scaled to [0, 1])")
    console.print(f"searched: {', '.join(str(d) for d in lookup.searched)}")
    for folder, other in lookup.skipped:
        console.print(f"skipped: {folder} (it holds {other})")
    if not lookup.complete:
        console.print(f"[yellow]not found[/]: {lookup.error()}")
        return
    console.print(f"found in: {lookup.folder}")
    table = Table(title="label counts")
    table.add_column("class")
    splits = {}
    for split in ("train", "test"):
        _, labels = read_split(lookup, split)
        splits[split] = np.bincount(labels, minlength=len(ds.classes))
        table.add_column(f"{split} ({len(labels):,})", justify="right")
    for i, name in enumerate(ds.classes):
        table.add_row(
            f"{i} {name}" if name != str(i) else name, *(f"{c[i]:,}" for c in splits.values())
        )
    console.print(table)


@data_app.command()
def show(
    dataset: str = DATASET,
    data_dir: Path = DATA_DIR,
    split: str = typer.Option("train", help="train or test."),
    n: int = typer.Option(32, "-n", min=1, max=400, help="How many samples."),
    start: int = typer.Option(0, min=0, help="Index of the first sample."),
    seed: int = typer.Option(None, min=0, help="Pick n random samples with this seed instead."),
    out: Path = typer.Option(Path("samples.png"), "--out", "-o", help="PNG file to write."),
) -> None:
    """Write a PNG grid of samples with their labels."""
    import numpy as np

    from .._io import output_file
    from ..data import locate, read_split

    lookup = locate(dataset, data_dir)  # the folder the loader reads
    ds = lookup.info
    out = output_file(out, (".png",), inputs=lookup.files(), option="out")
    images, labels = read_split(lookup, split)
    if seed is not None:
        idx = np.random.default_rng(seed).choice(
            len(images), size=min(n, len(images)), replace=False
        )
    else:
        if start >= len(images):
            raise MnistlabError(
                f"--start {start} is past the end of {split} ({len(images)} images)"
            )
        idx = np.arange(start, min(start + n, len(images)))
    title = f"{ds.name} {split}: " + (
        f"{len(idx)} random (seed {seed})" if seed is not None else f"#{idx[0]}-{idx[-1]}"
    )
    from ..analysis.plots import plot_samples  # heavy: only once the checks pass

    try:
        path = plot_samples(images[idx], labels[idx], ds.classes, out, title=title)
    except OSError as e:
        raise MnistlabError(f"cannot write {out} ({e.strerror}); choose another --out") from None
    console.print(f"wrote {path} ({len(idx)} samples)")
