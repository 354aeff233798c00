"""A flag that would change nothing, or write somewhere nobody meant, is refused in one
line (exit status 2) before any work: an optimiser's or a schedule's option given to a
run that uses another, an empty output path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mnistlab.cli import main
from tests.support.cli import error_from
from tests.support.processes import cli_env


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--optimizer", "sgd", "--beta1", "0.5"],
            "--beta1 is Adam's and AdamW's alone, and this run's optimizer is sgd; drop it, "
            "or add --optimizer adam",
        ),
        (["--optimizer", "adadelta", "--beta2", "0.9"], "--beta2 is Adam's and AdamW's alone"),
        (["--momentum", "0.5"], "--momentum is SGD's alone, and this run's optimizer is adam"),
        # torch's one-cycle schedule overwrites SGD's momentum at every step
        (
            ["--optimizer", "sgd", "--momentum", "0.5"],
            "--momentum is replaced by the onecycle schedule's own cycle",
        ),
        (["--gamma", "0.5"], "--gamma is the step schedule's alone"),
        (["--schedule", "cosine", "--step-size", "2"], "--step-size is the step schedule's alone"),
        # the preset's optimiser counts: seed 000 trains with SGD
        (["--preset", "seed000-cnn", "--beta1", "0.5"], "--beta1 is Adam's and AdamW's alone"),
    ],
)
def test_an_option_the_runs_optimizer_or_schedule_ignores_is_refused(
    args, message, tmp_path, capsys
):
    assert main(["train", *args, "--dry-run", "--out-dir", str(tmp_path)]) == 2
    assert message in error_from(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_presets_own_betas_do_not_stop_the_user_choosing_sgd(tmp_path, capsys):
    # speedrun sets Adam's beta1 and beta2; --optimizer sgd leaves them unused, not wrong
    small = ["--train-subset", "512", "--val-size", "256", "--threads", "1"]
    argv = ["train", "--preset", "speedrun", "--optimizer", "sgd", "--dry-run", *small]
    assert main([*argv, "--out-dir", str(tmp_path), "--name", "r"]) == 0, capsys.readouterr().err
    assert (tmp_path / "r" / "config.json").is_file()


@pytest.mark.parametrize(("command", "default"), [("evaluate", "eval"), ("inspect", "inspect")])
def test_an_empty_out_is_refused_and_nothing_is_written_here(
    command, default, trained_run, tmp_path, mnist_dir
):
    proc = subprocess.run(
        [sys.executable, "-m", "mnistlab", command, str(trained_run), "--out", ""],
        cwd=tmp_path,
        env=cli_env(mnist_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: --out needs a folder; leave the flag out for RUN/{default}"
    ]
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_backend_is_refused_by_its_flag_before_any_model_loads(tmp_path, capsys):
    # refused before the run is even looked for: no such run folder exists here
    args = ["predict", str(tmp_path / "run"), str(tmp_path / "d.png"), "--backend", "tensorflow"]
    assert main(args) == 2
    assert error_from(capsys) == "error: --backend must be auto, torch or onnx, got 'tensorflow'"
