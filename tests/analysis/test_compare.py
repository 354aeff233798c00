"""compare: two small models, one epoch each on a subset, every column and every file."""

from __future__ import annotations

import csv
import json

import pytest

from mnistlab.analysis.compare import SUITES, comparison_table, parse_entry, write_outputs
from mnistlab.cli import main
from mnistlab.errors import UsageError
from tests.support.browser import chromium_page
from tests.support.cli import fails

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


def test_compare_out_onto_a_file(tmp_path, capsys):
    a_file = tmp_path / "results.md"
    a_file.write_text("mine")
    line = fails(["compare", "mlp-small", "linear", "--out", str(a_file), "--dry-run"], 2, capsys)
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
    line = fails([*args, "--out", str(tmp_path / "cmp")], 1, capsys)
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
    line = fails(["compare", *args, "--dry-run", "--out", str(tmp_path / "c")], 2, capsys)
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


def test_compare_entries_that_clash_or_repeat_are_usage_errors():
    with pytest.raises(UsageError, match="names its model first"):
        parse_entry("cnn:model=mlp", "shared", None, {})
    with pytest.raises(UsageError, match="sets lr twice"):
        parse_entry("cnn:lr=1,lr=2", "shared", None, {})
    # the entry's own setting wins over the shared one (it used to be a TypeError)
    entry = parse_entry("cnn:augment=affine", "shared", None, {"augment": "none"})
    assert entry.config.augment == "affine" and entry.config.model == "cnn"


def test_a_comparison_is_replaced_whole_or_not_at_all(tmp_path):
    out = tmp_path / "cmp"
    write_outputs([_row("mlp-small", None), _row("linear", None)], out, [0])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # a folder where a chart goes: the new comparison cannot be put in place
    (out / "tradeoff.png").unlink()
    (out / "tradeoff.png").mkdir()
    (out / "tradeoff.png" / "keep").write_text("x")
    del before["tradeoff.png"]
    with pytest.raises(IsADirectoryError):
        write_outputs([_row("resnet", None), _row("cnn", None)], out, [0])
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # the old comparison, every file of it
    assert not list(out.glob(".comparison.partial-*"))
