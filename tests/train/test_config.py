"""``TrainConfig``: absurd or mistyped values are refused in one line (exit 2) before
anything is written; what is allowed is not refused."""

from __future__ import annotations

import pytest

from mnistlab import TrainConfig
from mnistlab.cli import main
from mnistlab.errors import UsageError
from tests.support.cli import error_from, error_line, run_main


@pytest.mark.parametrize(
    "args,expect",
    [
        (["--lr", "inf"], "--lr must be"),
        (["--lr", "1e30"], "--lr must be"),
        (["--lr", "nan"], "--lr must be"),
        (["--mean", "nan"], "--mean must be"),
        (["--std", "inf"], "--std must be"),
        (["--std", "0"], "--std must be"),
        (["--weight-decay", "inf"], "--weight-decay must be"),
        (["--seed", "99999999999999999999"], "--seed must be between 0 and"),
        (["--seed", "-1"], "--seed must be between 0 and"),
        (["--threads", "1000"], "--threads must be between 1 and"),
        (["--epochs", "100000000000000000000"], "--epochs must be at least 1 and at most"),
        (["--model", "lenet5", "--ops", "bogus"], "--ops must be one of torch, im2col, loops"),
        (
            ["--model", "cnn", "--ops", "im2col"],
            "model 'cnn': bad arguments {'ops': 'im2col'}: no setting 'ops'",
        ),
        (["--train-subset", "100000"], "--train-subset asks for 100,000 images"),
        (["--name", "../escaped"], "the run name must be a plain folder name"),
        (["--batch-size", "10000000"], "--batch-size must be at least 1 and at most"),
    ],
)
def test_absurd_training_values_are_refused_in_one_line(tmp_path, args, expect):
    proc = run_main("train", *args, "--dry-run", "--out-dir", tmp_path)
    line = error_line(proc, 2)
    assert expect in line, line
    assert list(tmp_path.iterdir()) == []  # refused before a run folder was made


def test_loss_mse_alone_is_not_refused_for_the_default_label_smoothing(tmp_path):
    # the default recipe smooths labels (0.1), which only cross-entropy takes: `--loss mse`
    # must not fail on a flag the user never gave. The bad --augment is only there to stop
    # the command right after the label smoothing check passed.
    args = ["--loss", "mse", "--augment", "bogus", "--out-dir", str(tmp_path)]
    line = error_line(run_main("train", *args), 2)
    assert "--augment must be" in line and "label" not in line
    line = error_line(run_main("train", *args[:2], "--label-smoothing", "0.1"), 2)
    assert "--label-smoothing works with loss ce only; set it to 0" in line


def test_config_fields_of_the_wrong_type_are_refused():
    # what an edited config.json brings: a string epoch count, kwargs as a string
    for changes, option in [
        ({"epochs": "10"}, "epochs"),
        ({"model_kwargs": "ops"}, "model_kwargs"),
        ({"lr": "0.1"}, "lr"),
        ({"channels_last": 1}, "channels_last"),
    ]:
        with pytest.raises(UsageError) as exc:
            TrainConfig(**changes).validate()
        assert exc.value.option == option
    TrainConfig().validate()  # the default recipe itself passes


@pytest.mark.parametrize("flag", ["--augment", "--device", "--preset", "--loss"])
def test_an_empty_training_value_is_not_the_default(flag, capsys):
    assert main(["train", flag, "", "--dry-run"]) == 2
    error_from(capsys, f"{flag} needs a value")
