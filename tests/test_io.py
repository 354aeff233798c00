"""Nothing half-built is ever used: a result of several files appears all at once.

Real subprocesses of the command line, stopped with real signals (SIGINT, SIGKILL)
at moments read off the filesystem; real files left as a killed write leaves them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mnistlab.models import create_model
from mnistlab.runs.checkpoint import load_checkpoint, save_checkpoint
from tests.support.files import copy_run
from tests.support.processes import cli_env

CLI = [sys.executable, "-m", "mnistlab"]


def _one_line_error(stderr: str, needle: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert needle in lines[0], stderr
    assert "Traceback" not in stderr and "error: unexpected" not in stderr, stderr


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture
def members(tmp_path) -> list[Path]:
    """Two run folders, each an untrained (valid) ``linear`` checkpoint: the cheapest
    members an ensemble takes."""
    runs = []
    for i in range(2):
        torch.manual_seed(i)
        run = tmp_path / f"member{i}"
        run.mkdir()
        save_checkpoint(run / "best", create_model("linear"), {})
        runs.append(run)
    return runs


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# --- 1. mnistlab ensemble, killed at several moments --------------------------------


def _reached(parent: Path, out: Path, moment: str | None) -> bool:
    """Whether the build has got to ``moment``: its temp folder exists (``"folder"``),
    or holds the file named, in the temp folder or (as earlier versions wrote) in ``out``."""
    if moment == "folder":
        return out.exists() or any(parent.glob(f".{out.name}.partial-*"))
    return (out / moment).exists() or any(parent.glob(f".{out.name}.partial-*/{moment}"))


def _absent_or_complete(out: Path) -> None:
    """``out`` does not exist (or is empty), or it is the finished ensemble and loads."""
    if not out.exists() or not any(out.iterdir()):
        return
    assert (out / "ensemble.json").is_file(), sorted(p.name for p in out.iterdir())
    doc = json.loads((out / "best.json").read_text())
    assert "calibration" in doc and "test_acc" in doc["metrics"]
    model, _ = load_checkpoint(out)
    assert model.meta.name == "ensemble"


@pytest.mark.slow
def test_a_killed_ensemble_leaves_no_model_and_the_rerun_finishes(members, tmp_path, mnist_dir):
    env = cli_env(mnist_dir)
    out = tmp_path / "E"
    cmd = [*CLI, "ensemble", *map(str, members), "-o", str(out), "--device", "cpu"]
    # (signal, moment): at once; as the temp folder appears; once the weights are
    # written; once best.json is (before calibration: what used to be taken as finished)
    moments = [
        (signal.SIGKILL, None),
        (signal.SIGKILL, "folder"),
        (signal.SIGINT, "best.safetensors"),
        (signal.SIGKILL, "best.json"),
    ]
    for sig, moment in moments:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        deadline = time.monotonic() + 300
        while moment and not _reached(tmp_path, out, moment) and proc.poll() is None:
            assert time.monotonic() < deadline, f"never reached {moment}"
            time.sleep(0.002)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode != 0, f"finished before {moment}; {stderr}"
        _absent_or_complete(out)
        if sig == signal.SIGINT:
            assert proc.returncode == 130, stderr
            _one_line_error(stderr, "interrupted")
            # an interrupted build removes its own temp folder
            assert not (tmp_path / f".E.partial-{proc.pid}").exists()
    # the last kill left a temp folder holding a whole (uncalibrated) checkpoint:
    # hidden, and nothing takes it for the ensemble
    assert [p.name for p in tmp_path.glob(".E.partial-*")], "nothing left to clean"
    missing = _run(["evaluate", str(out)], env)
    assert missing.returncode == 1
    _one_line_error(missing.stderr, "no checkpoint at")

    out.mkdir(exist_ok=True)  # an empty folder given as the output is filled
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr
    made = sorted(p.name for p in out.iterdir())
    assert made == ["best.json", "best.onnx", "best.safetensors", "ensemble.json"]
    _absent_or_complete(out)
    assert not list(tmp_path.glob(".E.partial-*")), "the rerun left the dead build's folder"


def test_ensemble_into_a_folder_with_other_files_is_refused(members, tmp_path, mnist_dir):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("mine\n")
    proc = _run(["ensemble", *map(str, members), "-o", str(out)], cli_env(mnist_dir))
    assert proc.returncode == 2
    _one_line_error(proc.stderr, "is not empty")
    assert [p.name for p in out.iterdir()] == ["todo.txt"]


# --- 2. temps a killed write left are removed by the next one ------------------------


def _temps(run: Path, pid: int) -> dict[str, Path]:
    """Temp files as atomic writes name them: of a dead writer, of a live one (this
    test's process), and of an older mnistlab (no pid): abandoned long ago, and fresh."""
    files = {
        "dead": run / f".curves.png.{pid}.k2x9q0ab.tmp",
        "dead in eval": run / "eval" / f".confusion.png.{pid}.0a1b2c3d.tmp",
        "live": run / f".curves.png.{os.getpid()}.zz99zz99.tmp",
        "old, abandoned": run / ".report.html.q1w2e3r4.tmp",
        "old, fresh": run / ".report.html.t5y6u7i8.tmp",
    }
    for path in files.values():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\x89PNG half written")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(files["old, abandoned"], (two_days_ago, two_days_ago))
    return files


@pytest.mark.slow
def test_report_removes_the_temps_of_a_killed_write(trained_run, tmp_path, mnist_dir):
    run = tmp_path / "run"
    copy_run(trained_run, run)
    (run / "report.html").unlink(missing_ok=True)
    files = _temps(run, _dead_pid())
    proc = _run(["report", str(run)], cli_env(mnist_dir))
    assert proc.returncode == 0, proc.stderr
    assert (run / "report.html").is_file() and (run / "curves.png").is_file()
    gone = {k for k, p in files.items() if not p.exists()}
    assert gone == {"dead", "dead in eval", "old, abandoned"}


@pytest.mark.slow
def test_resume_removes_the_temps_of_a_killed_write(tmp_path, mnist_dir):
    env = cli_env(mnist_dir)
    train = [*CLI, "train", "--model", "linear", "--epochs", "4", "--train-subset", "500"]
    train += ["--augment", "none", "--outliers", "0", "--threads", "1"]
    train += ["--out-dir", str(tmp_path), "--name", "r"]
    proc = subprocess.Popen(
        train, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    run = tmp_path / "r"
    deadline = time.monotonic() + 300
    while not (run / "last.json").is_file() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    files = _temps(run, _dead_pid())
    again = _run(["train", "--resume", str(run), "--threads", "1"], env)
    assert again.returncode == 0, again.stderr
    gone = {k for k, p in files.items() if not p.exists()}
    assert {"dead", "old, abandoned"} <= gone and files["live"].exists()


# --- 3. ensembles: link loops and an edited best.json --------------------------------


def test_a_link_loop_as_a_member_or_the_output_is_a_usage_error(members, tmp_path, mnist_dir):
    env = cli_env(mnist_dir)
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    proc = _run(["ensemble", str(members[0]), str(loop), "-o", str(tmp_path / "x")], env)
    assert proc.returncode == 2
    _one_line_error(proc.stderr, "symbolic link to nothing")
    assert not (tmp_path / "x").exists()
    proc = _run(["ensemble", *map(str, members), "-o", str(loop)], env)
    assert proc.returncode == 2
    _one_line_error(proc.stderr, "--out")
    assert "symbolic link to nothing" in proc.stderr
    assert not list(tmp_path.glob(".loop.partial-*"))


def test_an_ensemble_with_a_member_removed_from_its_json_says_so(members, tmp_path, mnist_dir):
    models = [load_checkpoint(run)[0] for run in members]
    ensemble = create_model("ensemble", members=[m.meta.to_dict() for m in models])
    ensemble.load_state_dict(
        {f"members.{i}.{k}": v for i, m in enumerate(models) for k, v in m.state_dict().items()}
    )
    out = tmp_path / "E"
    out.mkdir()
    save_checkpoint(out / "best", ensemble, {})
    doc = json.loads((out / "best.json").read_text())
    del doc["model"]["kwargs"]["members"][1]
    (out / "best.json").write_text(json.dumps(doc))
    proc = _run(["evaluate", str(out)], cli_env(mnist_dir))
    assert proc.returncode == 1
    _one_line_error(proc.stderr, "do not match its weights")
    assert "lists 1 member, its weights hold 2" in proc.stderr
    assert "mnistlab ensemble" in proc.stderr and "older version" not in proc.stderr
