"""compare: two small models, one epoch each on a subset, every column and every file."""

from __future__ import annotations

import csv
import json

import pytest

from mnistlab.analysis.compare import SUITES, parse_entry
from mnistlab.cli import main
from mnistlab.errors import UsageError
from tests.support.browser import chromium_page

FILES = [
    "comparison.md",
    "comparison.csv",
    "comparison.json",
    "accuracy.png",
    "tradeoff.png",
    "curves.png",
    "report.html",
]
# unaugmented: 1,500 images in one epoch are too few to learn the default's augmentations
ARGS = ["--seeds", "0,1", "--epochs", "1", "--augment", "none"]
ARGS += ["--train-subset", "1500", "--val-size", "500"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    assert main(["compare", "cnn", "mlp-small", *ARGS, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_every_file_and_every_column(compared):
    for name in FILES:
        assert (compared / name).is_file(), name
    rows = list(csv.DictReader((compared / "comparison.csv").open()))
    assert [r["model"] for r in rows] == ["cnn", "mlp-small"]
    for r in rows:
        assert 0.3 < float(r["test_acc_mean"]) <= 1 and float(r["test_acc_std"]) >= 0
        assert float(r["train_seconds"]) > 0 and float(r["images_per_s"]) > 0
        assert float(r["latency_ms"]) > 0 and float(r["mflops"]) > 0
    assert (int(rows[0]["params"]), float(rows[0]["mflops"])) == (21_840, 0.961)
    md = (compared / "comparison.md").read_text()
    for col in ("test accuracy", "parameters", "MFLOPs", "train time", "images/s", "latency"):
        assert col in md
    data = json.loads((compared / "comparison.json").read_text())
    cnn = data["rows"][0]
    # mean and std are of the two seeds' best checkpoints, as saved in their runs
    accs = [
        json.loads((compared / f"cnn-s{s}" / "best.json").read_text())["metrics"]["test_acc"]
        for s in (0, 1)
    ]
    assert cnn["test_accs"] == accs and cnn["test_acc_mean"] == pytest.approx(sum(accs) / 2)
    assert len(cnn["curves"]) == 2 and cnn["curves"][0]["split"] == "val"


@pytest.mark.slow
def test_running_again_keeps_finished_runs(compared, capsys):
    before = (compared / "cnn-s0" / "best.safetensors").stat().st_mtime_ns
    assert main(["compare", "cnn", "mlp-small", *ARGS, "--out", str(compared)]) == 0
    assert "cnn-s0: done already, kept" in capsys.readouterr().out
    assert (compared / "cnn-s0" / "best.safetensors").stat().st_mtime_ns == before


@pytest.mark.slow
def test_a_kept_run_with_another_recipe_is_refused(compared, capsys):
    other = ["--seeds", "0", "--epochs", "2", "--augment", "none"]
    other += ["--train-subset", "1500", "--val-size", "500"]
    assert main(["compare", "cnn", "mlp-small", *other, "--out", str(compared)]) == 2
    err = capsys.readouterr().err
    assert "another recipe" in err and "epochs=1" in err


@pytest.mark.slow
def test_comparison_report_renders(compared):
    with chromium_page() as page:
        page.goto((compared / "report.html").as_uri())
        assert page.locator("h1").inner_text() == "Comparison"
        assert page.locator("tbody tr").count() == 2
        widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert len(widths) == 3 and min(widths) > 100


def test_suites_are_well_formed():
    assert set(SUITES) == {"seed000", "seed001", "seed002", "seed004"}
    for spec in SUITES.values():
        entries = [parse_entry(e, spec["recipe"], spec["base"], {}) for e in spec["entries"]]
        assert len(entries) >= 2
    ce, mse = (
        parse_entry(e, "shared", "seed002-mlp-mse", {}) for e in SUITES["seed002"]["entries"]
    )
    assert (ce.config.loss, mse.config.loss) == ("ce", "mse")
    assert ce.config.lr == mse.config.lr == 0.005


def test_bad_entries(capsys):
    with pytest.raises(UsageError, match="not a model"):
        parse_entry("nope", "shared", None, {})
    with pytest.raises(UsageError, match="not a preset"):
        parse_entry("cnn", "own", None, {})
    with pytest.raises(UsageError, match="expected a float"):
        parse_entry("mlp:lr=fast", "shared", None, {})
    assert main(["compare", "--suite", "seed999"]) == 2
    assert main(["compare"]) == 2
    assert main(["compare", "cnn", "--seeds", "a,b"]) == 2
    assert "--seeds" in capsys.readouterr().err
