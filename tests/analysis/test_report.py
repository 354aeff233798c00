"""The run report: one self-contained HTML file that renders in a real browser."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from mnistlab import TrainConfig, fit
from mnistlab.analysis.report import write_run_report
from mnistlab.cli import main
from tests.support.browser import chromium_page
from tests.support.cli import fails, immutable
from tests.support.files import copy_run
from tests.support.processes import REPO

pytestmark = pytest.mark.slow  # every test here trains, or writes a report from a training

ARTEFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def run(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(
        model="cnn",
        epochs=2,
        train_subset=3000,
        val_size=500,
        out_dir=str(out),
        data_dir=str(mnist_dir),
    )
    run_dir = fit(cfg).run_dir
    write_run_report(run_dir, mnist_dir)
    return run_dir


def test_report_is_self_contained(run):
    page = (run / "report.html").read_text()
    # every picture is inlined; nothing is fetched from anywhere
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 5
    assert not re.search(r'(src|href)="(https?:)?//', page)
    for heading in (
        "Training curves",
        "The most confident mistakes",
        "Calibration",
        "Model",
        "Configuration",
    ):
        assert f"<h2>{heading}" in page
    assert "21,840" in page  # the cnn's parameters, from the model summary


def test_report_renders_in_chromium(run):
    ARTEFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        page.goto((run / "report.html").as_uri())
        assert page.title().startswith("mnistlab")
        assert page.locator("h1").inner_text() == "cnn on mnist"
        sizes = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert len(sizes) == 5 and all(w > 100 for w in sizes)
        cards = page.locator(".card").all_inner_texts()
        assert any("test accuracy" in c for c in cards)
        shot = ARTEFACTS / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_train_cli_writes_the_report(tmp_path, capsys):
    assert main(["train", "--dry-run", "--model", "cnn", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "report.html").is_file() and f"report: {run_dir}" in out
    assert main(["report", str(tmp_path / "nope")]) == 1


@pytest.mark.slow
def test_report_on_a_locked_run_folder(tiny_run_copy, capsys):
    before = (tiny_run_copy / "report.html").read_bytes()
    with immutable(tiny_run_copy):
        line = fails(["report", str(tiny_run_copy)], 1, capsys)
    assert str(tiny_run_copy) in line and "make it writable" in line
    assert (tiny_run_copy / "report.html").read_bytes() == before


@pytest.mark.slow
def test_report_redoes_a_damaged_eval_json(tiny_run_copy, capsys):
    (tiny_run_copy / "eval").mkdir()
    (tiny_run_copy / "eval" / "eval.json").write_text("{half")
    assert main(["report", str(tiny_run_copy)]) == 0, capsys.readouterr().err
    assert "accuracy" in json.loads((tiny_run_copy / "eval" / "eval.json").read_text())


def test_report_without_metrics_prints_no_warning(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    copy_run(trained_run, run)
    (run / "metrics.jsonl").write_text("")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the CLI shows them on stderr
        assert main(["report", str(run)]) == 0
    assert [str(w.message) for w in caught] == []
    assert capsys.readouterr().err.strip() == ""


def test_report_redraws_the_curves_only_when_the_metrics_changed(tiny_run_copy, capsys):
    import os

    curves, metrics = tiny_run_copy / "curves.png", tiny_run_copy / "metrics.jsonl"
    drawn = curves.stat().st_mtime_ns
    assert drawn > metrics.stat().st_mtime_ns  # training drew them after its last epoch
    assert main(["report", str(tiny_run_copy)]) == 0, capsys.readouterr().err
    assert curves.stat().st_mtime_ns == drawn  # up to date: kept
    later = drawn + 10**9  # the metrics change after the curves were drawn
    os.utime(metrics, ns=(later, later))
    assert main(["report", str(tiny_run_copy)]) == 0, capsys.readouterr().err
    assert curves.stat().st_mtime_ns != drawn  # redrawn
    curves.unlink()  # gone: drawn again
    assert main(["report", str(tiny_run_copy)]) == 0, capsys.readouterr().err
    assert curves.is_file()
