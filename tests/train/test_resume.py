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
from mnistlab.errors import MnistlabError
from mnistlab.runs import folder
from mnistlab.train import Reporter
from tests.support.cli import error_from, error_line, run_main
from tests.support.files import edit_json


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
    edit_json(run / "config.json", lambda d: d.pop("log_every"))
    line = _resume_error(run, capsys)
    assert "config.json lacks log_every;" in line and "restore it" in line


def test_a_config_with_an_unknown_key_is_refused(run, capsys):
    edit_json(run / "config.json", lambda d: d.update(learning_rate=0.5))
    line = _resume_error(run, capsys)
    assert "config.json has unknown keys learning_rate;" in line


def test_the_untouched_folder_still_resumes(run):
    result = fit(TrainConfig(), resume=run)
    assert [h["epoch"] for h in result.history] == [1, 2]


RESUME_TAMPERED = {
    "string resume epoch": (
        "last.json",
        lambda d: d["resume"].update(epoch="2"),
        "resume.epoch is '2', not a count",
    ),
    "no resume key": ("last.json", lambda d: d.pop("resume"), "holds no resume position"),
    "another model in config.json": (
        "config.json",
        lambda d: d.update(model="cnn"),
        "config.json names model 'cnn' but last.json holds 'linear'",
    ),
    "bad value in config.json": (
        "config.json",
        lambda d: d.update(lr=float("inf")),
        "config.json: --lr must be",
    ),
    "settings the model lacks in config.json": (
        "config.json",
        lambda d: d.update(model_kwargs={"ops": "bogus"}),
        "config.json: model 'linear': bad arguments",
    ),
    "unknown model in config.json": (
        "config.json",
        lambda d: d.update(model="nosuch"),
        "config.json: unknown model 'nosuch'",
    ),
}


@pytest.mark.parametrize("case", list(RESUME_TAMPERED))
def test_resume_refuses_an_edited_run_folder_in_one_line(run, case):
    name, change, expect = RESUME_TAMPERED[case]
    edit_json(run / name, change)
    line = error_line(run_main("train", "--resume", str(run)), 1)
    assert expect in line, line


def test_a_run_folder_with_only_its_config_says_there_is_nothing_to_resume(tmp_path):
    # what Ctrl-C before the first checkpoint leaves
    run = tmp_path / "early"
    run.mkdir()
    folder.write_config(run, TrainConfig().to_dict())
    line = error_line(run_main("train", "--resume", str(run)), 1)
    assert "nothing to resume" in line and "train it again" in line
    line = error_line(run_main("evaluate", str(run)), 1)
    assert "holds no checkpoint" in line and "train it again" in line


@pytest.mark.parametrize("command", [["train", "--resume"], ["evaluate"]])
def test_a_nonexistent_run_path_says_no_such_folder(tmp_path, command):
    missing = tmp_path / "nonexistent"
    line = error_line(run_main(*command, str(missing)), 1)
    assert "no such folder" in line and str(missing) in line
    assert "nonexistent.json" not in line


def test_corrupt_run_files_are_named_in_one_line(run):
    (run / "last.json").write_text("{not json")
    with pytest.raises(MnistlabError, match=r"last\.json: not valid JSON"):
        folder.is_finished(run)
    (run / "config.json").write_text("[1, 2]")
    with pytest.raises(MnistlabError, match=r"config\.json: not a JSON object"):
        folder.read_config(run)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, mnist_dir):
    cfg = TrainConfig(
        model="cnn",
        epochs=2,
        train_subset=512,
        val_size=128,
        batch_size=128,
        augment="none",
        out_dir=str(tmp_path_factory.mktemp("runs")),
        run_name="r",
        data_dir=str(mnist_dir),
    )
    return fit(cfg).run_dir


def _edited(run, tmp_path, resume=None, config=None):
    """A copy of ``run`` whose last.json resume position and config.json are edited
    (made resumable: done false)."""
    out = tmp_path / "edited"
    shutil.copytree(run, out)
    last = json.loads((out / "last.json").read_text())
    last["resume"].update({"done": False, **(resume or {})})
    (out / "last.json").write_text(json.dumps(last))
    cfg = json.loads((out / "config.json").read_text())
    cfg.update(config or {})
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.mark.parametrize(
    "resume, config, needle",
    [
        ({"epoch": 99, "step": 0}, None, "resume.epoch 99 is past the run's 2 epochs"),
        ({"epoch": 2, "step": 1_000_000_000}, None, "resume.step 1000000000 is past"),
        ({"epoch": 2, "step": 0}, {"epochs": 3}, "epochs is 3 but the run was saved with 2"),
    ],
)
def test_resume_refuses_an_edited_position_or_recipe(
    finished_run, tmp_path, capsys, resume, config, needle
):
    run = _edited(finished_run, tmp_path, resume, config)
    assert main(["train", "--resume", str(run)]) == 1
    error_from(capsys, needle)
