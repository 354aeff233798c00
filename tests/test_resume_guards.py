"""`train --resume` refuses a run folder that lost its record or had its recipe edited,
in one line, rather than going on with part of a history or with today's defaults."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from mnistlab import TrainConfig, fit
from mnistlab.cli import main
from mnistlab.train import Reporter


class _CtrlCAfterEpoch1(Reporter):
    """Presses Ctrl-C (a real SIGINT to this process) as epoch 1 ends."""

    def epoch_end(self, record: dict) -> None:
        if record["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture(scope="module")
def stopped_after_epoch_1(tmp_path_factory, mnist_dir) -> Path:
    """A tiny run folder stopped by Ctrl-C after epoch 1 of 2: one epoch on record."""
    out = tmp_path_factory.mktemp("stopped")
    cfg = TrainConfig(
        model="linear",
        augment="none",
        train_subset=256,
        val_size=128,
        batch_size=64,
        epochs=2,
        log_every=2,
        threads=1,
        data_dir=str(mnist_dir),
        out_dir=str(out),
        run_name="r",
    )
    result = fit(cfg, reporter=_CtrlCAfterEpoch1())
    assert result.interrupted and result.position["epoch"] == 2
    return result.run_dir


def _resume_error(run: Path, capsys) -> str:
    """The one error line of ``mnistlab train --resume RUN``, after checking its promise."""
    assert main(["train", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "unexpected" not in err
    return lines[0]


def _edit_config(run: Path, change) -> None:
    doc = json.loads((run / "config.json").read_text())
    change(doc)
    (run / "config.json").write_text(json.dumps(doc))


@pytest.fixture
def run(stopped_after_epoch_1, tmp_path) -> Path:
    return Path(shutil.copytree(stopped_after_epoch_1, tmp_path / "run"))


def test_a_run_whose_metrics_were_deleted_is_refused(run, capsys):
    (run / "metrics.jsonl").unlink()
    line = _resume_error(run, capsys)
    assert "metrics.jsonl is missing but the run has trained 1 epoch(s)" in line
    assert not (run / "metrics.jsonl").exists()  # nothing was trained or written


def test_a_run_whose_metrics_lost_an_epoch_is_refused(run, capsys):
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines()
    steps = [x for x in lines if json.loads(x)["type"] != "epoch"]
    assert len(steps) < len(lines)  # the epoch record was there
    path.write_text("".join(x + "\n" for x in steps))
    assert "lacks the record of epoch(s) 1 of the 1" in _resume_error(run, capsys)


def test_a_config_with_a_key_deleted_is_refused(run, capsys):
    # a runtime setting: last.json's copy of the recipe cannot see it, and the run
    # would go on logging every 100 steps (the default) instead of its 2
    _edit_config(run, lambda d: d.pop("log_every"))
    line = _resume_error(run, capsys)
    assert "config.json lacks log_every;" in line and "restore it" in line


def test_a_config_with_an_unknown_key_is_refused(run, capsys):
    _edit_config(run, lambda d: d.update(learning_rate=0.5))
    line = _resume_error(run, capsys)
    assert "config.json has unknown keys learning_rate;" in line


def test_the_untouched_folder_still_resumes(run):
    result = fit(TrainConfig(), resume=run)
    assert [h["epoch"] for h in result.history] == [1, 2]
