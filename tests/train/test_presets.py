"""Presets: each seed's recipe, overridable by flags, recorded in the run."""

from __future__ import annotations

import json

import pytest

from mnistlab import TrainConfig, list_models
from mnistlab.cli import main
from mnistlab.errors import UsageError
from mnistlab.train.presets import PRESETS

# The recipes as the issue and the seeds state them: (model, optimizer, lr, batch, epochs).
EXPECTED = {
    "seed000-cnn": ("cnn", "sgd", 0.01, 64, 10),
    "seed002-mlp-mse": ("mlp", "sgd", 0.005, 512, 3),
    "seed003-example": ("pytorch-example", "adadelta", 1.0, 64, 14),
    "seed004-lenet": ("lenet", "sgd", 0.01, 32, 8),
    "seed004-lenet-bn": ("lenet-bn", "sgd", 0.01, 32, 8),
    "seed001-lenet5": ("lenet5", "sgd", 0.2, 64, 6),
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_valid_config_for_a_registered_model(name):
    cfg = TrainConfig.from_preset(name).validate()
    assert cfg.model in list_models() and cfg.preset == name


@pytest.mark.parametrize("name,expected", list(EXPECTED.items()))
def test_seed_recipes(name, expected):
    cfg = TrainConfig.from_preset(name)
    assert (cfg.model, cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs) == expected


def test_recipe_details():
    assert TrainConfig.from_preset("seed000-cnn").momentum == 0.5
    mse = TrainConfig.from_preset("seed002-mlp-mse")
    assert (mse.loss, mse.momentum) == ("mse", 0.9)
    ex = TrainConfig.from_preset("seed003-example")
    assert (ex.schedule, ex.gamma, ex.step_size) == ("step", 0.7, 1)
    for name in ("seed004-lenet", "seed004-lenet-bn"):  # ToTensor only: no normalisation
        cfg = TrainConfig.from_preset(name)
        assert (cfg.mean, cfg.std, cfg.momentum) == (0.0, 1.0, 0.0)
    assert (TrainConfig.from_preset("seed001-lenet5").mean, 0.5) == (0.5, 0.5)
    # seeds 000, 002, 003, 004 train on all 60,000 images; seed 001 keeps a dev split
    for name in ("seed000-cnn", "seed002-mlp-mse", "seed003-example", "seed004-lenet"):
        assert TrainConfig.from_preset(name).val_size == 0
    assert TrainConfig.from_preset("seed001-lenet5").val_size > 0


def test_unknown_preset():
    with pytest.raises(UsageError, match="unknown preset 'nope'"):
        TrainConfig.from_preset("nope")


@pytest.mark.slow
def test_flags_override_the_preset_and_normalisation_reaches_the_checkpoint(tmp_path):
    rc = main(
        ["train", "-p", "seed004-lenet", "--epochs", "3", "--dry-run", "--out-dir", str(tmp_path)]
    )
    assert rc == 0
    (run,) = tmp_path.iterdir()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["preset"] == "seed004-lenet" and cfg["epochs"] == 3 and cfg["batch_size"] == 32
    model = json.loads((run / "best.json").read_text())["model"]
    assert model["name"] == "lenet" and (model["mean"], model["std"]) == (0.0, 1.0)


def test_list_presets_and_bad_preset_on_the_cli(capsys):
    assert main(["train", "--list-presets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PRESETS)
    assert main(["train", "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err
