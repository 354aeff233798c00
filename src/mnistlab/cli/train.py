"""``mnistlab train``: train a model and write a run folder."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import sys
from pathlib import Path
from typing import NoReturn

import typer

from ..errors import UsageError
from .options import DATA_DIR, DEVICE, console, table
from .train_options import CONFIG_OPTIONS

__all__ = ["CONFIG_OPTIONS", "train"]


def train(
    ctx: typer.Context,
    preset: str = typer.Option(
        None, "--preset", "-p", help="Start from a named recipe; flags override it."
    ),
    list_presets: bool = typer.Option(False, "--list-presets", help="List the presets and exit."),
    # The CONFIG_OPTIONS parameters are read together, from ctx.params.
    model: str = CONFIG_OPTIONS["model"],
    ops: str = CONFIG_OPTIONS["ops"],
    dataset: str = CONFIG_OPTIONS["dataset"],
    epochs: int = CONFIG_OPTIONS["epochs"],
    steps: int = CONFIG_OPTIONS["steps"],
    batch_size: int = CONFIG_OPTIONS["batch_size"],
    lr: float = CONFIG_OPTIONS["lr"],
    momentum: float = CONFIG_OPTIONS["momentum"],
    beta1: float = CONFIG_OPTIONS["beta1"],
    beta2: float = CONFIG_OPTIONS["beta2"],
    weight_decay: float = CONFIG_OPTIONS["weight_decay"],
    optimizer: str = CONFIG_OPTIONS["optimizer"],
    loss: str = CONFIG_OPTIONS["loss"],
    label_smoothing: float = CONFIG_OPTIONS["label_smoothing"],
    augment: str = CONFIG_OPTIONS["augment"],
    mean: float = CONFIG_OPTIONS["mean"],
    std: float = CONFIG_OPTIONS["std"],
    schedule: str = CONFIG_OPTIONS["schedule"],
    step_size: int = CONFIG_OPTIONS["step_size"],
    gamma: float = CONFIG_OPTIONS["gamma"],
    ema: float = CONFIG_OPTIONS["ema"],
    outliers: float = CONFIG_OPTIONS["outliers"],
    outlier_weight: float = CONFIG_OPTIONS["outlier_weight"],
    val_size: int = CONFIG_OPTIONS["val_size"],
    train_subset: int = CONFIG_OPTIONS["train_subset"],
    seed: int = CONFIG_OPTIONS["seed"],
    log_every: int = CONFIG_OPTIONS["log_every"],
    out_dir: str = CONFIG_OPTIONS["out_dir"],
    run_name: str = CONFIG_OPTIONS["run_name"],
    data_dir: Path = DATA_DIR,
    device: str = DEVICE,
    threads: int = typer.Option(
        None, help="CPU threads for torch. \\[default: torch's choice; 1 per rank under torchrun]"
    ),
    channels_last: bool = typer.Option(
        True, help="Keep conv weights and activations NHWC: faster on CPU (benchmarks/results.md)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="One epoch of 2 batches: checks everything runs."
    ),
    resume: Path = typer.Option(None, help="Continue the run in this folder where it stopped."),
    nproc: int = typer.Option(
        None,
        help="Train with N processes on this machine: runs this command under "
        "`torchrun --standalone --nproc-per-node N` (docs/distributed.md).",
    ),
) -> None:
    """Train a model and write a run folder: config, metrics, checkpoints and curves.

    With no flags this is the default recipe: the `fast` network, Adam with a
    one-cycle schedule, batch 256, label smoothing 0.1, 11 epochs with the handwriting
    augmentations (affine2+thickness+ink+lowres), so that it reads people's own digits as well as
    MNIST's (docs/handwriting.md), and one image that is no digit per 8 digits, so that it
    can answer "not a digit" (docs/trust.md). Ctrl-C stops after the current step and
    saves the state; `--resume RUN` continues exactly where it stopped.

    It runs unchanged under torchrun (or with `--nproc N`): each process trains on
    its share of every batch and rank 0 writes the run folder (docs/distributed.md).
    """
    from ..train import Reporter, TrainConfig, dist, fit
    from .progress import RichReporter

    if list_presets:
        _print_presets()
        return
    if nproc is None:  # a torchrun rank: die with the launcher, not train on as an orphan
        from ..train.lifeline import die_with_launcher

        die_with_launcher()
    given = {k: ctx.params[k] for k in CONFIG_OPTIONS if ctx.params[k] is not None}
    for key, value in [*given.items(), ("preset", preset), ("device", device)]:
        if isinstance(value, str) and not value.strip():  # '' must not mean "the default"
            raise UsageError("needs a value; leave the flag out for the default", option=key)
    if resume is not None and (given or dry_run or preset):
        extra = ["dry_run"] * dry_run + ["preset"] * bool(preset)
        flags = ", ".join("--" + k.replace("_", "-") for k in [*given, *extra])
        raise UsageError(f"--resume continues the run's saved recipe; drop {flags}")
    if "epochs" in given and "steps" in given:
        raise UsageError("--epochs and --steps both set how long to train; give one of them")
    if "epochs" in given:
        given["steps"] = None  # whole epochs, whatever budget the preset had
    if given.get("loss") == "mse" and "label_smoothing" not in given:
        given["label_smoothing"] = 0.0  # the default recipe smooths cross-entropy's labels only
    if "ops" in given:
        given["model_kwargs"] = {"ops": given.pop("ops")}
    cfg = TrainConfig.from_preset(preset, **given) if preset else TrainConfig(**given)
    _check_unused_options(given, cfg)
    # runtime settings (with --resume, fit trains the run's saved config instead)
    cfg = dataclasses.replace(
        cfg,
        data_dir=str(data_dir) if data_dir is not None else cfg.data_dir,
        threads=threads,
        channels_last=channels_last,
        dry_run=dry_run,
    )
    if nproc is not None:
        _launch(ctx, nproc, cfg, resume)
        return
    main, ranks = dist.is_main(), dist.world_size()  # under torchrun, rank 0 alone talks
    reporter = RichReporter(console) if main else Reporter()
    try:
        result = fit(cfg, resume=resume, reporter=reporter, device_override=device)
    except dist.ReportedByMain as e:  # rank 0 says it (this rank's reporter is silent)
        _end_rank(e.exit_code)
    finally:
        reporter.close()
    if not main:
        _end_rank(130 if result.interrupted else 0)
    run = result.run_dir
    if result.interrupted:
        p = result.position
        launch = f"--nproc {ranks} " if ranks > 1 else ""
        console.print(
            f"[yellow]interrupted[/] at epoch {p['epoch']}, step {p['step']}; "
            f"state saved in {run}\n"
            f"resume with: mnistlab train {launch}--resume {run}"
        )
        if ranks > 1:
            _end_rank(130)
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
    from ..analysis.calibrate import calibrate_checkpoint
    from ..analysis.report import write_run_report
    from .combine import reject_line

    if result.best is not None:  # the probabilities users see: made honest on held-out images
        from .._runtime import pick_device

        dev = pick_device(device or cfg.device)
        c = calibrate_checkpoint(run / "best.json", cfg.data_dir, dev)
        console.print(
            f"calibrated: temperature {c['temperature']:.3f} (fitted on {c['fitted_on']}; "
            f"ECE there {c['ece_before']:.2%} -> {c['ece_after']:.2%})"
        )
        if "reject_threshold" in c:
            console.print(reject_line(c))
    report = write_run_report(run, cfg.data_dir)
    console.print(f"run folder: {run}  (checkpoints, best.onnx, metrics.jsonl, curves.png, eval/)")
    console.print(f"report: {report}")
    if ranks > 1:
        _end_rank(0)


def _check_unused_options(given: dict, cfg) -> None:
    """Refuse an option typed for an optimiser or schedule the run does not use: it
    would change nothing, silently. Only what the user typed counts: a preset's Adam
    betas are merely unused when ``--optimizer sgd`` replaces its Adam."""
    from ..train.config import OPTIMIZERS, SCHEDULES

    if cfg.optimizer not in OPTIMIZERS or cfg.schedule not in SCHEDULES:
        return  # validate() says so
    opt, sched = cfg.optimizer, cfg.schedule
    why = {}  # option: why it would change nothing here
    if opt not in ("adam", "adamw"):
        why["beta1"] = why["beta2"] = (
            f"is Adam's and AdamW's alone, and this run's optimizer is {opt}; "
            "drop it, or add --optimizer adam"
        )
    if opt != "sgd":
        why["momentum"] = (
            f"is SGD's alone, and this run's optimizer is {opt}; drop it, or add --optimizer sgd"
        )
    elif sched == "onecycle":  # torch's OneCycleLR sets SGD's momentum at every step
        why["momentum"] = (
            "is replaced by the onecycle schedule's own cycle (0.95 to 0.85); drop it, "
            "or choose another --schedule"
        )
    if sched != "step":
        why["step_size"] = why["gamma"] = (
            f"is the step schedule's alone, and this run's schedule is {sched}; "
            "drop it, or add --schedule step"
        )
    for name in given:
        if name in why:
            raise UsageError(why[name], option=name)


def _end_rank(status: int) -> NoReturn:
    """End a torchrun rank now, without Python's shutdown: everything is written.

    DDP keeps the gloo group's worker threads alive past ``destroy_process_group``,
    and one still releasing a finished collective's tensors while the interpreter
    shuts down aborts the process ("terminate called without an active exception",
    about 1 run in 40 here); torchrun would then call the run failed and kill the
    other ranks, perhaps before rank 0 has written the report.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def _print_presets() -> None:
    from ..train.presets import PRESETS

    rows = [[name, values["_about"]] for name, values in PRESETS.items()]
    console.print(table("mnistlab train --preset NAME", ["preset", "recipe"], rows, left=2))


def _launch(ctx: typer.Context, nproc: int, cfg, resume: Path | None) -> None:
    """Run this very command on ``nproc`` ranks on this machine, as torchrun would.

    Checks what it can first, so that a bad value is one line rather than one per
    rank. This process is torchrun's agent (``elastic_launch``, in process, so that
    a failure or a Ctrl-C ends in one line rather than torchrun's traceback). Ctrl-C
    reaches it and it passes it on to the ranks: they stop after the same step and
    rank 0 saves the state, as in one process.
    """
    from ..runs import folder
    from ..train import dist
    from ..train.lifeline import LAUNCHER_PID

    if not 1 <= nproc <= 1024:
        raise UsageError(f"must be between 1 and 1024, got {nproc}", option="nproc")
    if "WORLD_SIZE" in os.environ:
        raise UsageError("is for a plain `mnistlab train`; this one already runs under torchrun")
    batch = cfg.validate().batch_size
    if resume is not None:  # the saved one; rank 0 checks the rest of the folder
        batch = folder.read_config(resume).get("batch_size")
    if isinstance(batch, int):
        dist.check_batch(batch, ranks=nproc)
    args = ["train", *_given_args(ctx)]
    console.print(
        f"[dim]torchrun --standalone --nproc-per-node {nproc} -m mnistlab {shlex.join(args)}[/]"
    )
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default for the ranks
    # for the ranks alone (they inherit it): one whose parent is not this process ends;
    # left behind, it would end the ranks of a later bare torchrun started from here
    os.environ[LAUNCHER_PID] = str(os.getpid())
    try:
        code = _run_ranks(nproc, [sys.executable, "-m", "mnistlab", *args])
    finally:
        os.environ.pop(LAUNCHER_PID, None)
    if code:
        raise typer.Exit(code)


def _run_ranks(nproc: int, command: list[str]) -> int:
    """Run ``command`` as ``nproc`` ranks (torchrun --standalone); its exit status.

    A rank that fails has said why; torchrun's own logs would only repeat it, so
    they go nowhere (log_dir os.devnull): torchrun would otherwise leave an empty
    ``$TMPDIR/torchelastic_*`` folder behind every run.
    """
    import logging
    import uuid

    from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs, SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        logs_specs=DefaultLogsSpecs(log_dir=os.devnull),
    )
    try:
        elastic_launch(config, command[0])(*command[1:])
    except SignalException:  # Ctrl-C: the ranks have stopped and rank 0 said where
        return 130
    except ChildFailedError as e:
        _, failure = e.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0


def _given_args(ctx: typer.Context) -> list[str]:
    """The options given on this command line (but --nproc), as flags again."""
    args = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if param.name == "nproc" or source is None or source.name == "DEFAULT":
            continue
        value = ctx.params[param.name]
        if param.is_flag and param.secondary_opts:  # --channels-last / --no-channels-last
            args.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.is_flag:
            args += [param.opts[0]] if value else []
        else:
            args += [param.opts[0], str(value)]
    return args
