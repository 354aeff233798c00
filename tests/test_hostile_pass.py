"""Regressions from a second hostile pass: each case printed a traceback-like
"unexpected" line, hung, wrote over a user's file or answered rc 0 on failure."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from mnistlab import TrainConfig, fit
from mnistlab.analysis.compare import parse_entry
from mnistlab.cli import main
from mnistlab.errors import UsageError
from mnistlab.serve.preprocess import PreprocessError, load_digit


def _one_line(capsys, needle: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unexpected" not in err and needle in err, err
    return err


def test_bench_out_never_overwrites_another_file(tmp_path, capsys):
    checkpoint_json = tmp_path / "best.json"
    checkpoint_json.write_text('{"format": "mnistlab-checkpoint"}')
    # best.md would write its results into best.json beside it
    assert main(["bench", "--quick", "--out", str(tmp_path / "best.md")]) == 2
    _one_line(capsys, "not an earlier bench's results")
    assert checkpoint_json.read_text() == '{"format": "mnistlab-checkpoint"}'
    image = tmp_path / "ok.png"
    image.write_bytes(b"png bytes")
    assert main(["bench", "--quick", "--out", str(image)]) == 2
    _one_line(capsys, "writes .md")
    assert image.read_bytes() == b"png bytes"


def test_bench_only_empty_is_refused_not_run_in_full(capsys):
    assert main(["bench", "--quick", "--only", ""]) == 2
    _one_line(capsys, "--only needs a section")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_float_image_with_non_finite_pixels_is_one_error(tmp_path, value):
    a = np.zeros((28, 28), dtype=np.float32)
    a[10:18, 12:15] = 1.0
    a[0, 0] = value
    path = tmp_path / "odd.tiff"
    Image.fromarray(a, "F").save(path)
    with pytest.raises(PreprocessError, match="NaN or infinite") as e:
        load_digit(path)
    assert e.value.kind == "corrupt"  # the web app answers 422 for it


def test_deeply_nested_checkpoint_json_is_one_line(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "best.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["summary", str(run)]) == 1
    _one_line(capsys, "nested too deep")


def test_compare_entries_that_clash_or_repeat_are_usage_errors():
    with pytest.raises(UsageError, match="names its model first"):
        parse_entry("cnn:model=mlp", "shared", None, {})
    with pytest.raises(UsageError, match="sets lr twice"):
        parse_entry("cnn:lr=1,lr=2", "shared", None, {})
    # the entry's own setting wins over the shared one (it used to be a TypeError)
    entry = parse_entry("cnn:augment=affine", "shared", None, {"augment": "none"})
    assert entry.config.augment == "affine" and entry.config.model == "cnn"


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
    _one_line(capsys, needle)


def test_predict_an_empty_name_does_not_classify_the_current_folder(trained_run, capsys):
    assert main(["predict", str(trained_run), ""]) == 2
    _one_line(capsys, "an empty name is not an image")


def test_report_without_metrics_prints_no_warning(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "metrics.jsonl").write_text("")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the CLI shows them on stderr
        assert main(["report", str(run)]) == 0
    assert [str(w.message) for w in caught] == []
    assert capsys.readouterr().err.strip() == ""


@pytest.mark.parametrize("flag", ["--augment", "--device", "--preset", "--loss"])
def test_an_empty_training_value_is_not_the_default(flag, capsys):
    assert main(["train", flag, "", "--dry-run"]) == 2
    _one_line(capsys, f"{flag} needs a value")


@pytest.mark.parametrize("name", ["best.json", "best.safetensors"])
def test_a_folder_in_place_of_a_checkpoint_file_is_called_that(trained_run, tmp_path, capsys, name):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / name).unlink()
    (run / name).mkdir()
    assert main(["summary", str(run)]) == 1
    err = _one_line(capsys, "not a file")
    assert "--resume" not in err
