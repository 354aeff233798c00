"""Checkpoints (safetensors + JSON): an edited, damaged or unreadable one is refused in one
line naming the file; the weights' hash is always checked."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from mnistlab import create_model, load_checkpoint, save_checkpoint
from mnistlab.cli import main
from mnistlab.runs.checkpoint import CheckpointError
from tests.support.cli import error_from, error_line, fails, run_main
from tests.support.files import copy_run, edit_json


@pytest.mark.slow
def test_unreadable_weights(tiny_run_copy, capsys):
    weights = tiny_run_copy / "best.safetensors"
    if os.geteuid() != 0:
        weights.chmod(0)
        line = fails(["evaluate", str(tiny_run_copy)], 1, capsys)
        assert str(weights) in line and "permission denied" in line
        weights.chmod(0o644)
    # root reads any file: a folder in its place cannot be read by anyone
    weights.unlink()
    weights.mkdir()
    line = fails(["evaluate", str(tiny_run_copy)], 1, capsys)
    assert "best.safetensors" in line


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return save_checkpoint(tmp_path / "ck", create_model("lenet5"))


TAMPERED = {
    "kwargs as a string": (lambda d: d["model"].update(kwargs="ops"), "model.kwargs must be"),
    "model as a list": (lambda d: d.update(model=["lenet5"]), "model must be an object"),
    "class_names as an int": (
        lambda d: d["model"].update(class_names=10),
        "model.class_names must be",
    ),
    "unknown ops": (lambda d: d["model"].update(kwargs={"ops": "bogus"}), "--ops must be one of"),
    "std 0": (lambda d: d["model"].update(std=0), "model.std must be a finite number above 0"),
    "mean nan": (lambda d: d["model"].update(mean=math.nan), "model.mean must be a finite"),
    "no weights_sha256": (lambda d: d.pop("weights_sha256"), "has no valid weights_sha256"),
    "format_version 99": (lambda d: d.update(format_version=99), "upgrade mnistlab"),
    "format_version text": (lambda d: d.update(format_version="1"), "unknown checkpoint format"),
    "weights elsewhere": (
        lambda d: d.update(weights="../ck.safetensors"),
        "weights must name a file beside it",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_checkpoint_json_is_refused_naming_the_file(checkpoint, case):
    change, expect = TAMPERED[case]
    edit_json(checkpoint, change)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(checkpoint)
    message = exc.value.cli_message()
    assert expect in message and str(checkpoint) in message and "\n" not in message


def test_integrity_is_never_skipped_corrupt_weights_without_a_hash(checkpoint):
    # what made corrupted weights evaluate as "loss nan, accuracy 9.80%" with rc 0
    weights = checkpoint.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-8:] = b"\xff" * 8  # the last weights become nan
    weights.write_bytes(bytes(data))
    edit_json(checkpoint, lambda d: d.pop("weights_sha256"))
    with pytest.raises(CheckpointError, match="cannot be checked"):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize("case", ["format_version 99", "class_names as an int", "std 0"])
def test_evaluate_refuses_a_tampered_checkpoint_in_one_line(checkpoint, case):
    change, expect = TAMPERED[case]
    edit_json(checkpoint, change)
    line = error_line(run_main("evaluate", str(checkpoint)), 1)
    assert expect in line


def test_deeply_nested_checkpoint_json_is_one_line(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    copy_run(trained_run, run)
    (run / "best.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["summary", str(run)]) == 1
    error_from(capsys, "nested too deep")


@pytest.mark.parametrize("name", ["best.json", "best.safetensors"])
def test_a_folder_in_place_of_a_checkpoint_file_is_called_that(trained_run, tmp_path, capsys, name):
    run = tmp_path / "run"
    copy_run(trained_run, run)
    (run / name).unlink()
    (run / name).mkdir()
    assert main(["summary", str(run)]) == 1
    err = error_from(capsys, "not a file")
    assert "--resume" not in err
