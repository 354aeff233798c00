"""The flags of ``mnistlab train`` that set ``TrainConfig`` fields."""

from __future__ import annotations

import typer

__all__ = ["CONFIG_OPTIONS"]


def _default(field: str) -> str:
    """Help suffix showing TrainConfig's default, so the two never disagree."""
    from ..train import TrainConfig

    value = getattr(TrainConfig(), field)
    return "" if value is None else f" \\[default: {value}]"  # \[ : literal bracket for rich


# The flags that set TrainConfig fields (``ops`` goes into ``model_kwargs``), keyed by
# parameter name and in the order of train's parameters. None means "not given": the
# preset's or TrainConfig's value stands. None of them can be combined with --resume.
CONFIG_OPTIONS = {
    "model": typer.Option(
        None, "--model", "-m", help="Model name (see `mnistlab models`)." + _default("model")
    ),
    "ops": typer.Option(
        None, help="Conv/pool implementation for lenet5: torch, im2col or loops (from scratch)."
    ),
    "dataset": typer.Option(None, help="mnist or fashion-mnist." + _default("dataset")),
    "epochs": typer.Option(None, "--epochs", "-e", help="Epochs to train." + _default("epochs")),
    "steps": typer.Option(
        None,
        help="Train this many optimiser steps in all instead of whole epochs (a budget "
        "finer than an epoch; the last epoch is cut short). \\[default: whole epochs]",
    ),
    "batch_size": typer.Option(
        None, "--batch-size", "-b", help="Training batch size." + _default("batch_size")
    ),
    "lr": typer.Option(None, help="(Peak) learning rate." + _default("lr")),
    "momentum": typer.Option(None, help="SGD momentum." + _default("momentum")),
    "beta1": typer.Option(
        None,
        help="Adam/AdamW's first beta, held for the whole run. \\[default: 0.9, which the "
        "onecycle schedule cycles between 0.95 and 0.85]",
    ),
    "beta2": typer.Option(None, help="Adam/AdamW's second beta." + _default("beta2")),
    "weight_decay": typer.Option(None, help="Weight decay." + _default("weight_decay")),
    "optimizer": typer.Option(None, help="sgd, adam, adamw or adadelta." + _default("optimizer")),
    "loss": typer.Option(
        None, help="ce (cross-entropy) or mse (MSE on one-hot)." + _default("loss")
    ),
    "label_smoothing": typer.Option(
        None, help="Label smoothing for ce." + _default("label_smoothing")
    ),
    "augment": typer.Option(
        None,
        help="Batch augmentation: none, affine, affine2, elastic, thickness, ink, blur, "
        "lowres, flag1 (some 1s get a flag and a foot), hflip (mirrored), shift (by up "
        "to 2 pixels), or a chain such as "
        "affine2+thickness. \\[default: the dataset's: affine2+thickness+ink+lowres for "
        "mnist, none for fashion-mnist]",
    ),
    "mean": typer.Option(None, help="Normalisation mean. \\[default: the dataset's]"),
    "std": typer.Option(None, help="Normalisation std. \\[default: the dataset's]"),
    "schedule": typer.Option(None, help="none, step, cosine or onecycle." + _default("schedule")),
    "step_size": typer.Option(
        None, help="Epochs between decays (step schedule)." + _default("step_size")
    ),
    "gamma": typer.Option(None, help="Decay factor (step schedule)." + _default("gamma")),
    "ema": typer.Option(
        None,
        help="Decay of an exponential moving average of the weights, evaluated and saved "
        "in their place (e.g. 0.999); 0 for none." + _default("ema"),
    ),
    "outliers": typer.Option(
        None,
        help="Share of each batch added as images that are no digit (letters, symbols, "
        "shapes), so that the model learns to say 'not a digit' (docs/trust.md); 0 for "
        "none. \\[default: 0.125 for mnist with loss ce, else 0]",
    ),
    "outlier_weight": typer.Option(
        None, help="Weight of the outliers' loss." + _default("outlier_weight")
    ),
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
