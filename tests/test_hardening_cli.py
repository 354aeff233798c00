"""Issue 15, the CLI's side: OS errors as one line naming the path, Ctrl-C from the
first moment, unwritable outputs and run folders, damaged compare runs, and
compare's seeds and entries. Real files, real subprocesses, a real SIGINT."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistlab.analysis.compare import comparison_table, write_outputs
from mnistlab.cli import main
from mnistlab.errors import describe_os_error
from tests.support.processes import cli_env


def _one_line(err: str) -> str:
    """The single error line of a failed command: no traceback, no "unexpected"."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "unexpected" not in err, err
    return lines[0]


def _fails(args: list[str], code: int, capsys) -> str:
    assert main(args) == code
    return _one_line(capsys.readouterr().err)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, mnist_dir) -> Path:
    """A run folder from a dry run (two batches): enough for evaluate, inspect, report."""
    out = tmp_path_factory.mktemp("tiny")
    args = ["train", "--model", "mlp-small", "--dry-run", "--train-subset", "500"]
    proc = subprocess.run(
        [sys.executable, "-m", "mnistlab", *args, "--out-dir", str(out), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(mnist_dir),
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = out.iterdir()
    return run


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run, without the pictures training left, that a test may
    damage or lock."""
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    for derived in ("eval", "inspect"):
        shutil.rmtree(run / derived, ignore_errors=True)
    return run


def _chattr(path: Path, flag: str) -> bool:
    try:
        proc = subprocess.run(["chattr", flag, str(path)], capture_output=True, timeout=10)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@contextlib.contextmanager
def immutable(path: Path):
    """``path`` made immutable (``chattr +i``): not even root can add files to it."""
    if not _chattr(path, "+i"):
        pytest.skip("chattr +i does not work here (needs root and a file system with it)")
    try:
        yield path
    finally:
        _chattr(path, "-i")


# --- the one place that turns OS errors into a line -------------------------------------


@pytest.mark.parametrize(
    "code,needle",
    [
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "not permitted"),
        (errno.ENOENT, "no such file or folder"),
        (errno.EISDIR, "is a folder"),
        (errno.ENOTDIR, "is a file, not a folder"),
        (errno.EEXIST, "already exists"),
        (errno.EROFS, "read-only file system"),
        (errno.ENOSPC, "no space left"),
        (errno.ENAMETOOLONG, "too long"),
        (errno.ELOOP, "symbolic links"),
        (errno.EXDEV, "check the path"),  # no fix of its own: the reason and a check
    ],
)
def test_every_os_error_names_the_path_and_a_fix(code, needle):
    line = describe_os_error(OSError(code, os.strerror(code), "/some/where/x.png"))
    assert line is not None and "/some/where/x.png" in line and needle in line
    assert ";" in line  # what is wrong; what to do


def test_a_rename_names_its_destination_and_a_full_disk_needs_no_path():
    e = OSError(errno.EISDIR, "Is a directory", "/d/.x.png.123.tmp", None, "/d/x.png")
    assert "/d/x.png is a folder" in describe_os_error(e)
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device")).startswith(
        "no space left"
    )
    # not about a file: a bug or a network error, not the user's path
    assert describe_os_error(OSError(errno.ECONNREFUSED, "Connection refused")) is None
    assert describe_os_error(OSError("no errno")) is None


@pytest.mark.parametrize("where", ["under a file", "too long"])
def test_an_os_error_reaching_main_is_one_line(where, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "cmp" if where == "under a file" else tmp_path / ("x" * 300)
    line = _fails(["compare", "mlp-small", "linear", "--dry-run", "--out", str(out)], 1, capsys)
    assert str(out) in line
    assert ("is a file, not a folder" if where == "under a file" else "too long") in line


# --- item 5: Ctrl-C in the first second -------------------------------------------------


def _startup_seconds() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t


def _interrupt(cmd: list[str], delay: float, env: dict) -> tuple[int, str, str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _digit_folder(folder: Path, n: int) -> Path:
    """``n`` copies of a drawn 1 as PNGs: enough that predict outlasts the latest moment."""
    if not folder.is_dir():
        folder.mkdir()
        one = np.full((56, 56), 255, np.uint8)
        one[8:48, 26:31] = 0
        for i in range(n):
            Image.fromarray(one).save(folder / f"{i:03d}.png")
    return folder


def _check_interrupted(rc: int, out: str, err: str, delay: float) -> None:
    assert "Traceback" not in err + out and "unexpected" not in err, (delay, err)
    if rc == 0:  # finished before the signal came: fine only for the latest moments
        assert delay >= 1.0, (delay, out, err)
        return
    assert rc == 130, (delay, rc, out, err)  # never swallowed, never a crash
    if err.strip():
        assert _one_line(err) == "error: interrupted", (delay, err)
    else:  # training had started: it stopped after a step and said so
        assert "interrupted at epoch" in out, (delay, out)


@pytest.mark.slow
@pytest.mark.parametrize(
    "entry,command",
    [("module", "train"), ("script", "train"), ("module", "evaluate"), ("module", "predict")],
)
def test_ctrl_c_early_is_one_line_and_exit_130(entry, command, tmp_path, mnist_dir, request):
    if entry == "module":
        cmd = [sys.executable, "-m", "mnistlab"]
    else:
        script = Path(sys.executable).parent / "mnistlab"
        if not script.is_file():
            pytest.skip(f"no console script at {script}")
        cmd = [str(script)]
    base = _startup_seconds()  # the moments count from a running interpreter
    for i, moment in enumerate((0.05, 0.2, 0.5, 1.0)):
        out_dir = tmp_path / f"out{i}"
        if command == "train":
            args = ["train", "--model", "mlp-small", "--dry-run", "--train-subset", "500"]
            args += ["--out-dir", str(out_dir), "--device", "cpu"]
        elif command == "predict":  # torch-free: what it loads is loaded before it starts
            run = request.getfixturevalue("tiny_run")
            args = ["predict", str(run), str(_digit_folder(tmp_path / "digits", 400))]
        else:
            run = request.getfixturevalue("tiny_run")
            args = ["evaluate", str(run), "--out", str(out_dir), "--device", "cpu"]
        rc, out, err = _interrupt([*cmd, *args], base + moment, cli_env(mnist_dir))
        _check_interrupted(rc, out, err, moment)


# --- item 6: unwritable outputs and run folders ----------------------------------------


@pytest.mark.slow
def test_evaluate_out_onto_a_file_or_under_one(tiny_run, tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    line = _fails(["evaluate", str(tiny_run), "--out", str(a_file)], 2, capsys)
    assert "--out" in line and str(a_file) in line and "folder" in line
    assert a_file.read_text() == "mine"
    under = a_file / "eval"
    line = _fails(["evaluate", str(tiny_run), "--out", str(under)], 1, capsys)
    assert str(under) in line and "is a file, not a folder" in line


@pytest.mark.slow
def test_evaluate_out_into_a_locked_folder(tiny_run, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    with immutable(locked):
        line = _fails(["evaluate", str(tiny_run), "--out", str(locked)], 1, capsys)
    assert str(locked) in line and "not permitted" in line


@pytest.mark.slow
@pytest.mark.parametrize("locked", ["run", "its folder"])
@pytest.mark.parametrize("command", ["evaluate", "inspect"])
def test_a_locked_run_folder_says_to_use_out(command, locked, run_copy, tmp_path, capsys):
    pictures = run_copy / ("eval" if command == "evaluate" else "inspect")
    if locked == "its folder":  # it exists, but nothing can be written in it
        pictures.mkdir()
    with immutable(run_copy if locked == "run" else pictures):
        line = _fails([command, str(run_copy)], 1, capsys)
    assert f"cannot write {pictures} " in line and "give --out a folder you can write" in line
    assert main([command, str(run_copy), "--out", str(tmp_path / "elsewhere")]) == 0


@pytest.mark.slow
def test_report_on_a_locked_run_folder(run_copy, capsys):
    before = (run_copy / "report.html").read_bytes()
    with immutable(run_copy):
        line = _fails(["report", str(run_copy)], 1, capsys)
    assert str(run_copy) in line and "make it writable" in line
    assert (run_copy / "report.html").read_bytes() == before


@pytest.mark.slow
def test_unreadable_weights(run_copy, capsys):
    weights = run_copy / "best.safetensors"
    if os.geteuid() != 0:
        weights.chmod(0)
        line = _fails(["evaluate", str(run_copy)], 1, capsys)
        assert str(weights) in line and "permission denied" in line
        weights.chmod(0o644)
    # root reads any file: a folder in its place cannot be read by anyone
    weights.unlink()
    weights.mkdir()
    line = _fails(["evaluate", str(run_copy)], 1, capsys)
    assert "best.safetensors" in line


# --- compare: outputs, damaged runs, seeds and entries ---------------------------------


def test_compare_out_onto_a_file(tmp_path, capsys):
    a_file = tmp_path / "results.md"
    a_file.write_text("mine")
    line = _fails(["compare", "mlp-small", "linear", "--out", str(a_file), "--dry-run"], 2, capsys)
    assert "--out" in line and str(a_file) in line
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize(
    "damage", ["{not json", "", "[1, 2]", "\xff\xfe", '{"resume": "3"}', '{"epoch": 1}']
)
def test_compare_names_a_damaged_last_json(damage, tmp_path, capsys):
    sub = tmp_path / "cmp" / "mlp-small-s0"
    sub.mkdir(parents=True)
    (sub / "last.json").write_bytes(damage.encode("latin-1"))
    args = ["compare", "mlp-small", "linear", "--seeds", "0", "--dry-run"]
    line = _fails([*args, "--out", str(tmp_path / "cmp")], 1, capsys)
    assert str(sub / "last.json") in line and f"delete the folder {sub}" in line


@pytest.mark.parametrize(
    "args,needle",
    [
        (["mlp-small", "linear", "--seeds", "0,0"], "--seeds repeats seed 0"),
        (["mlp-small", "linear", "--seeds", "1,2,1"], "--seeds repeats seed 1"),
        (["mlp-small", "linear", "--seeds", "-1"], "--seeds must be between 0 and"),
        (["mlp-small"], "name at least two"),
        (["mlp-small", "mlp-small"], "the same entry twice"),
        ([], "name at least two"),
    ],
)
def test_compare_refuses_what_it_would_count_twice(args, needle, tmp_path, capsys):
    line = _fails(["compare", *args, "--dry-run", "--out", str(tmp_path / "c")], 2, capsys)
    assert needle in line
    assert not (tmp_path / "c").exists()  # refused before anything was made


def _row(label: str, std: float | None) -> dict:
    curve = {"run": f"{label}-s0", "split": "val", "epochs": [1], "acc": [0.9]}
    return {
        "label": label,
        "model": label,
        "seeds": 1 if std is None else 2,
        "test_acc_mean": 0.9,
        "test_acc_std": std,
        "test_accs": [0.9],
        "params": 1000,
        "mflops": 0.5,
        "train_seconds": 1.0,
        "images_per_s": 100.0,
        "latency_ms": 1.0,
        "curves": [curve],
        "runs": [curve["run"]],
    }


def test_one_seed_shows_no_spread(tmp_path):
    rows = [_row("mlp-small", None), _row("linear", None)]
    _, cells = comparison_table(rows)
    assert cells[0][1] == "90.00%"
    write_outputs(rows, tmp_path, [0])
    for name in ("comparison.md", "report.html"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "±" not in text and "one seed" in text, name
    assert (tmp_path / "comparison.csv").read_text().splitlines()[1].split(",")[2] == ""
    assert json.loads((tmp_path / "comparison.json").read_text())["rows"][0]["test_acc_std"] is None
    # two seeds still show their spread
    _, cells = comparison_table([_row("a", 0.01)])
    assert cells[0][1] == "90.00 ± 1.00%"


@pytest.mark.slow
def test_a_real_one_seed_comparison_shows_no_spread(tmp_path, capsys):
    out = tmp_path / "one-seed"
    args = ["compare", "mlp-small", "linear", "--seeds", "3", "--dry-run", "--augment", "none"]
    assert main([*args, "--train-subset", "500", "--val-size", "500", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "seeds 3" in table and "±" not in table
    assert "±" not in (out / "comparison.md").read_text(encoding="utf-8")
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert [r["test_acc_std"] for r in rows] == [None, None]


@pytest.mark.slow
def test_report_redoes_a_damaged_eval_json(run_copy, capsys):
    (run_copy / "eval").mkdir()
    (run_copy / "eval" / "eval.json").write_text("{half")
    assert main(["report", str(run_copy)]) == 0, capsys.readouterr().err
    assert "accuracy" in json.loads((run_copy / "eval" / "eval.json").read_text())


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes any folder whatever its mode")
@pytest.mark.parametrize("command", ["evaluate", "inspect", "report"])
def test_an_unreadable_run_folder(command, run_copy, capsys):
    run_copy.chmod(0)
    try:
        line = _fails([command, str(run_copy)], 1, capsys)
    finally:
        run_copy.chmod(0o755)
    assert str(run_copy) in line and "permission denied" in line
