"""The terminal side of training: progress bars and the per-epoch table (rich)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..train import Reporter, TrainConfig

__all__ = ["RichReporter", "format_config"]

# (header, record key, format) for the per-epoch table
COLUMNS = [
    ("epoch", "epoch", "{:>5d}"),
    ("train loss", "train_loss", "{:>10.4f}"),
    ("train acc", "train_acc", "{:>9.2%}"),
    ("val loss", "val_loss", "{:>8.4f}"),
    ("val acc", "val_acc", "{:>7.2%}"),
    ("test acc", "test_acc", "{:>8.2%}"),
    ("lr", "lr", "{:>8.2e}"),
    ("train s", "train_seconds", "{:>7.1f}"),
]


def _width(header: str, fmt: str) -> int:
    return max(len(header), len(fmt.format(0 if fmt.endswith("d}") else 0.0)))


def format_config(cfg: TrainConfig) -> str:
    shown = cfg.to_dict()
    if cfg.steps is not None:
        del shown["epochs"]  # a step budget decides the length; epochs would mislead
    return "  ".join(f"{k}={v}" for k, v in shown.items() if v not in (None, {}))


class RichReporter(Reporter):
    def __init__(self, console: Console | None = None):
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.progress: Progress | None = None
        self.task = None
        self.header_done = False
        self.run_dir: Path | None = None

    def start(self, cfg: TrainConfig, run_dir: Path, info: dict) -> None:
        self.run_dir = run_dir
        c = self.console
        sizes = f"{info['train_size']:,} train / {info['val_size']:,} val"
        c.print(
            f"[bold]mnistlab train[/]: {cfg.model} on {info['dataset']} ({sizes}) · "
            f"{info['device']} · {info['params']:,} parameters · "
            f"{info['steps_per_epoch']} steps/epoch"
        )
        c.print(f"[dim]config: {format_config(cfg)}[/]")
        if cfg.dry_run:
            c.print("[yellow]dry run: 1 epoch of 2 batches, evaluated on 512 images[/]")
        if info.get("resumed_at"):
            r = info["resumed_at"]
            c.print(f"resuming at epoch {r['epoch']}, step {r['step']}")
        c.print(f"run folder: {run_dir}")

    def epoch_start(self, epoch: int, steps: int, start_step: int) -> None:
        if not self.header_done:
            self.console.print(
                "  ".join(h.rjust(_width(h, f)) for h, _, f in COLUMNS), style="bold"
            )
            self.header_done = True
        self.progress = Progress(
            TextColumn(f"epoch {epoch}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,  # no bar in logs and pipes
        )
        self.task = self.progress.add_task("train", total=steps, completed=start_step, stats="")
        self.progress.start()

    def step(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step)

    def log(self, record: dict) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task, stats=f"loss {record['loss']:.4f} acc {record['acc']:.2%}"
            )

    def _stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def epoch_end(self, record: dict) -> None:
        self._stop_progress()
        cells = []
        for header, key, fmt in COLUMNS:
            value = record.get(key)
            text = fmt.format(value) if value is not None else "-"
            cells.append(text.rjust(_width(header, fmt)))
        self.console.print("  ".join(cells))
        if self.run_dir is not None:  # the curves so far, to look at while it trains
            from ..analysis.plots import write_curves

            write_curves(self.run_dir)

    def close(self) -> None:
        self._stop_progress()
