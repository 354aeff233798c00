"""Making models more than the sum of runs: ``ensemble`` and ``calibrate``."""

from __future__ import annotations

from pathlib import Path

import typer

from .options import DATA_DIR, DEVICE, RUN_OR_CHECKPOINT, console, table

__all__ = ["calibrate", "ensemble"]


def ensemble(
    runs: list[Path] = typer.Argument(..., help="Run folders (or checkpoints, or ensembles)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the ensemble to."),
    data_dir: Path = DATA_DIR,
    device: str = DEVICE,
) -> None:
    """Save several trained runs as one model: the mean of their probabilities.

    The folder it writes takes the place of a run folder everywhere (evaluate,
    predict, serve, inspect, export). Members may differ in architecture. Its
    temperature is fitted on held-out images (see `mnistlab calibrate`), and
    ensemble.json lists each member's and the ensemble's test accuracy and ECE.
    """
    from .._runtime import pick_device
    from ..analysis.ensemble import build_ensemble

    summary = build_ensemble(runs, out, data_dir, pick_device(device or "auto"))
    rows = [
        [r["model"], r["architecture"], f"{r['test_accuracy']:.2%}", f"{r['test_ece']:.2%}"]
        for r in summary["test"]
    ]
    header = ["member", "model", "test accuracy", "test ECE"]
    console.print(table(f"ensemble of {len(rows) - 1} on {summary['dataset']} test", header, rows))
    _print_calibration(summary["calibration"])
    console.print(f"ensemble in {out} (best.json, best.safetensors, best.onnx, ensemble.json)")


def calibrate(
    run: Path = RUN_OR_CHECKPOINT,
    data_dir: Path = DATA_DIR,
    device: str = DEVICE,
) -> None:
    """Fit the temperature that makes the model's probabilities honest, and store it.

    Fitted on the run's validation split (training images where it has none, which
    it says); the checkpoint's weights do not change, and every probability shown
    from then on uses it. Writes the model as ONNX beside the checkpoint (best.onnx),
    for predict and serve without torch. `mnistlab train` and `mnistlab ensemble`
    already do this.
    """
    from .._runtime import pick_device
    from ..analysis.calibrate import calibrate_checkpoint
    from ..runs.folder import checkpoint_json

    checkpoint = checkpoint_json(run)
    record = calibrate_checkpoint(checkpoint, data_dir, pick_device(device or "auto"))
    _print_calibration(record)
    if record.get("onnx"):
        console.print(f"wrote {checkpoint.with_name(record['onnx'])} (predict and serve use it)")


def _print_calibration(r: dict) -> None:
    console.print(
        f"calibrated: temperature {r['temperature']:.3f}, fitted on {r['fitted_on']}; "
        f"ECE there {r['ece_before']:.2%} -> {r['ece_after']:.2%}, "
        f"on test {r['test_ece_before']:.2%} -> {r['test_ece_after']:.2%}"
    )
    if "reject_threshold" in r:
        console.print(reject_line(r))


def reject_line(r: dict) -> str:
    """What the fitted reject threshold does on validation data (and on test)."""
    return (
        f"not a digit below digit score {r['reject_threshold']:.3f}: rejects "
        f"{r['val_outliers_rejected']:.1%} of the validation non-digits and "
        f"{r['val_digits_rejected']:.2%} of the validation digits "
        f"(test digits: {r['test_rejected']:.2%})"
    )
