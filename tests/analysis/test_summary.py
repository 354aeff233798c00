"""Summary: FLOPs against hand arithmetic, shapes against the documented walk."""

from __future__ import annotations

import pytest

from mnistlab import create_model, list_models
from mnistlab.analysis.summary import count_flops, summarize
from mnistlab.cli import main


def test_cnn_flops_by_hand():
    # A multiply-add is 2 FLOPs; per image:
    conv1 = 2 * (10 * 24 * 24) * (1 * 5 * 5)  # 288,000
    conv2 = 2 * (20 * 8 * 8) * (10 * 5 * 5)  # 640,000
    fc1 = 2 * 320 * 50  # 32,000
    fc2 = 2 * 50 * 10  # 1,000
    assert count_flops(create_model("cnn")) == conv1 + conv2 + fc1 + fc2 == 961_000


def test_lenet5_flops_by_hand():
    # on the 32x32 image the model resizes to (the resize itself is not counted)
    conv1 = 2 * (6 * 28 * 28) * 25  # 235,200
    conv2 = 2 * (16 * 10 * 10) * (6 * 25)  # 480,000
    conv3 = 2 * 120 * (16 * 25)  # 96,000
    fc1, fc2 = 2 * 120 * 84, 2 * 84 * 10  # 20,160 and 1,680
    assert count_flops(create_model("lenet5")) == conv1 + conv2 + conv3 + fc1 + fc2 == 833_040


def test_cnn_layer_walk_matches_its_docstring():
    rows = summarize(create_model("cnn")).rows
    shapes = [r.output_shape[1:] for r in rows if r.kind in ("Conv2d", "MaxPool2d", "Linear")]
    assert shapes == [(10, 24, 24), (10, 12, 12), (20, 8, 8), (20, 4, 4), (50,), (10,)]


@pytest.mark.parametrize("name", list_models())
def test_rows_add_up_to_the_totals(name):
    s = summarize(create_model(name))
    assert sum(r.params for r in s.rows) == s.params
    assert sum(r.flops for r in s.rows) == s.flops > 0
    assert s.rows[-1].output_shape == (1, 10)


@pytest.mark.slow
def test_summary_cli_on_a_name_and_on_a_run(tmp_path, capsys):
    assert main(["summary", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "61,706" in out and "0.833 MFLOPs" in out and "(N, 6, 28, 28)" in out
    assert main(["train", "--model", "cnn", "--dry-run", "--out-dir", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    capsys.readouterr()
    assert main(["summary", str(run)]) == 0
    assert "21,840" in capsys.readouterr().out


def test_summary_cli_names_the_layers(capsys):
    assert main(["summary", "cnn"]) == 0
    rows = capsys.readouterr().out.splitlines()
    for layer, kind in (("conv1", "Conv2d"), ("pool1", "MaxPool2d"), ("fc1", "Linear")):
        assert any(f" {layer} " in r and kind in r for r in rows), f"no {layer} row"
