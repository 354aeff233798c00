"""The command line end to end on real MNIST, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlab.cli import main
from mnistlab.errors import UsageError


def _single_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def cnn_run(cnn_cli_run):
    """`mnistlab train --model cnn --epochs 1` on the full real training set.

    The session's one training run (tests/conftest.py), shared with ``trained_run``.
    """
    return cnn_cli_run


@pytest.mark.slow
def test_train_cnn_one_epoch_reaches_97_percent(cnn_run):
    run, stdout = cnn_run
    best = json.loads((run / "best.json").read_text())
    assert best["metrics"]["test_acc"] >= 0.97
    assert f"test accuracy {100 * best['metrics']['test_acc']:.2f}%" in stdout
    assert "config: model=cnn" in stdout
    for name in (
        "config.json",
        "metrics.jsonl",
        "best.safetensors",
        "best.onnx",
        "last.safetensors",
        "curves.png",
    ):
        assert (run / name).is_file()
    assert re.fullmatch(r"\d{8}-\d{6}-cnn", run.name)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"] == "cnn" and cfg["epochs"] == 1 and cfg["val_size"] == 5000


@pytest.mark.slow
def test_evaluate_reports_the_saved_accuracy_and_confusion(cnn_run, capsys):
    run, _ = cnn_run
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    acc = json.loads((run / "best.json").read_text())["metrics"]["test_acc"]
    assert f"accuracy {100 * acc:.2f}%" in out
    assert "10,000 images" in out and "Confusion matrix" in out


@pytest.mark.slow
def test_python_dash_m_and_version():
    proc = subprocess.run(
        [sys.executable, "-m", "mnistlab", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("mnistlab ")


def test_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("train", "evaluate", "models", "data"):
        assert cmd in out


@pytest.mark.slow
def test_dry_run_writes_a_run_folder(tmp_path, capsys):
    assert main(["train", "--dry-run", "--out-dir", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    assert (run / "best.json").is_file() and "dry run" in capsys.readouterr().out
    # its reject threshold is fitted on the first 512 validation outliers, not all 5,000
    calibration = json.loads((run / "best.json").read_text())["calibration"]
    assert calibration["val_outliers"] == 512


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["train", "--model", "nope"], 2, "unknown model 'nope'"),
        (["train", "--epochs", "-1"], 2, "--epochs must be at least 1"),
        (["train", "--lr", "0"], 2, "--lr must be greater than 0"),
        (["train", "--epochs", "two"], 2, "--epochs"),
        (["train", "--bogus"], 2, "--bogus"),
        (["train", "--optimizer", "rmsprop"], 2, "--optimizer must be one of"),
        (["train", "--dataset", "cifar"], 2, "unknown dataset 'cifar'"),
        (["train", "--device", "cuda"], 2, "CUDA is not available"),
        (["train", "--resume", "/no/such/run"], 1, "not a run folder"),
        (["train", "--resume", "/tmp", "--epochs", "3"], 2, "drop --epochs"),
        (["evaluate", "/no/such/run"], 1, "no checkpoint at /no/such/run"),
        (["evaluate", "."], 1, "no checkpoint"),
        (["nope"], 2, "No such command"),
        (["data", "show", "--split", "validation"], 2, "unknown split"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code(args, code, needle, capsys, tmp_path):
    args = [a if a != "/tmp" else str(tmp_path) for a in args]
    assert main(args) == code
    line = _single_error_line(capsys.readouterr().err)
    assert needle in line


def test_missing_data_says_which_files_to_put_where(tmp_path, capsys):
    assert main(["train", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path)]) == 1
    line = _single_error_line(capsys.readouterr().err)
    assert "t10k-labels-idx1-ubyte.gz" in line and str(tmp_path / "mnist") in line
    assert "mnistlab data download" in line


def test_malformed_data_file_is_named(tmp_path, mnist_dir, capsys):
    for f in mnist_dir.glob("*.gz"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 3)
    )
    assert main(["train", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "r")]) == 1
    line = _single_error_line(capsys.readouterr().err)
    assert "t10k-labels-idx1-ubyte.gz" in line


@pytest.mark.slow
def test_console_script_exit_code_without_traceback(tmp_path):
    exe = Path(sys.executable).with_name("mnistlab")
    proc = subprocess.run([str(exe), "train", "--lr", "-3"], capture_output=True, text=True)
    assert proc.returncode == 2
    _single_error_line(proc.stderr)


def test_the_command_line_collects_garbage_again_once_its_imports_are_done():
    # run() stops the cyclic collector while torch imports (there is nothing to collect,
    # and collecting costs 10-15% of the import), and must start it again: a training
    # makes reference cycles for hours. What the imports made is frozen, never scanned.
    code = (
        "import atexit, gc, sys; sys.argv = ['mnistlab', 'models'];"
        "atexit.register(lambda: print('gc', gc.isenabled(), gc.get_freeze_count() > 10**5));"
        "import mnistlab.cli; mnistlab.cli.run()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "gc True True"


def test_output_file_refuses_inputs_folders_and_wrong_extensions(tmp_path):
    from mnistlab._io import output_file

    img = tmp_path / "one.png"
    img.write_bytes(b"not really a png")
    with pytest.raises(UsageError, match="also an input"):
        output_file(img, (".png",), [str(img)], option="show")
    with pytest.raises(UsageError, match=r"writes \.png; give the file that extension"):
        output_file(tmp_path / "out.txt", (".png",), option="show")
    with pytest.raises(UsageError, match="is a folder"):
        (tmp_path / "d.png").mkdir()
        output_file(tmp_path / "d.png", (".png",))
    with pytest.raises(UsageError, match="needs a file name"):
        output_file("", (".png",))
    assert img.read_bytes() == b"not really a png"  # nothing was written
    assert output_file(tmp_path / "new.PNG", (".png",), [str(img)]) == tmp_path / "new.PNG"
