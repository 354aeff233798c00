"""benchmarks/trust.py, run as a user runs it (a subprocess, ``--quick``) on the session's
trained cnn: its files, and its figures against what is worked out here from the
model itself (``load_predictor(run).judge``) and scikit-learn's AUROC."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mnistlab.data import load_split
from mnistlab.data.outliers import outlier_images
from mnistlab.serve.predict import load_predictor
from tests.support.processes import REPO, cli_env

pytestmark = pytest.mark.slow  # the trained cnn, then about a minute of measuring

QUICK_TEST = 1000  # MNIST test digits the --quick run scores (trust.py's QUICK["test"])


def trust(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "trust.py"), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def result(trained_run, tmp_path_factory, mnist_dir) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("trust")
    md, js = out / "trust.md", out / "trust.json"
    proc = trust(
        str(trained_run), "--quick", "--out", str(md), "--json", str(js), env=cli_env(mnist_dir)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(js.read_text()), md.read_text()


def _row(rows: list[dict], name: str, split: str | None = None) -> dict:
    (row,) = [r for r in rows if r["set"] == name and split in (None, r.get("split"))]
    return row


def test_mnist_test_rejections_and_accuracies_are_the_models_own(result, trained_run):
    res, _ = result
    predictor = load_predictor(trained_run)
    x, y = load_split("mnist", "test")
    x, y = x[:QUICK_TEST, 0].numpy(), y[:QUICK_TEST].numpy()
    probs, _, ok = predictor.judge(x)
    right = probs.argmax(1) == y
    row = _row(res["rejection"]["digits"], "MNIST test", "test")
    assert row["n"] == QUICK_TEST
    assert predictor.reject_threshold is not None
    assert res["threshold"] == predictor.reject_threshold
    assert row["rejected"] == pytest.approx(1 - ok.mean(), abs=1e-12)
    assert row["acc_rejected_wrong"] == pytest.approx((right & ok).mean(), abs=1e-12)
    assert row["acc_kept"] == pytest.approx(right[ok].mean(), abs=1e-12)
    assert 0.95 < row["acc_all"] <= 1  # a cnn trained one epoch reads MNIST test this well


def test_outlier_figures_match_calibration_and_sklearn(result, trained_run):
    from sklearn.metrics import roc_auc_score

    res, _ = result
    rows = res["rejection"]["nondigits"]
    glyphs, shapes = (_row(rows, f"validation outliers: {k}") for k in ("glyphs", "shapes"))
    every = _row(rows, "validation outliers: all")
    assert glyphs["n"] + shapes["n"] == every["n"] == len(outlier_images("val"))
    assert glyphs["n"] > 0 and shapes["n"] > 0
    predictor = load_predictor(trained_run)
    x = load_split("mnist", "test")[0][:QUICK_TEST, 0].numpy()
    digits, others = predictor.judge(x)[1], predictor.judge(outlier_images("val"))[1]
    t = predictor.reject_threshold
    assert every["rejected"] == pytest.approx(np.mean(others < t), abs=1e-12)
    # what `mnistlab calibrate` recorded when it fitted the threshold, by its own path,
    # from float64 scores: the same but for the outliers whose float32 score (ONNX
    # Runtime's) is too close to the threshold to tell the side. It sits a hair above
    # one outlier's score, and a glyph drawn again scores the same: for one cnn, 12
    # copies of one glyph sat there and moved across together
    fitted = json.loads((trained_run / "best.json").read_text())["calibration"]
    near = 4 * np.spacing(np.float32(t))
    assert np.mean(others < t - near) <= fitted["val_outliers_rejected"]
    assert fitted["val_outliers_rejected"] <= np.mean(others < t + near)
    truth = roc_auc_score(np.r_[np.ones(len(digits)), np.zeros(len(others))], np.r_[digits, others])
    assert every["auroc"] == pytest.approx(truth, abs=1e-9)


def test_the_report_names_the_cpu_and_every_section(result):
    res, md = result
    assert res["machine"]["cpu"] and res["machine"]["cpu"] in md
    for heading in ("## Rejection", "## Formatted numbers", "## Cost", "## How it was chosen"):
        assert heading in md
    assert "chosen on validation data only" in md
    from mnistlab.data.number_rows import FORMATS

    assert set(res["numbers"]["rows"]) == set(FORMATS)  # every format read, and shown
    assert all(f"| {name} | `{pattern}` |" in md for name, pattern in FORMATS.items())
    cli = res["cost"]["cli"]
    # the CLI read MNIST test digits from PNG files about as well as the model reads them
    # in memory; with --accept-all none is "not a digit", without it no more are right
    acc = _row(res["rejection"]["digits"], "MNIST test", "test")["acc_all"]
    assert cli["accept_all"]["not_digit"] == 0
    assert cli["accept_all"]["right"] >= (acc - 0.03) * cli["files"]
    assert cli["default"]["right"] <= cli["accept_all"]["right"]


def test_a_run_without_a_threshold_is_refused_in_one_line(trained_run, tmp_path, mnist_dir):
    run = tmp_path / "run"
    shutil.copytree(
        trained_run, run, ignore=shutil.ignore_patterns("eval", "inspect", "report.html")
    )
    doc = json.loads((run / "best.json").read_text())
    doc["model"]["reject_threshold"] = None
    (run / "best.json").write_text(json.dumps(doc))
    out = ("--out", str(tmp_path / "t.md"), "--json", str(tmp_path / "t.json"))
    proc = trust(str(run), "--quick", *out, env=cli_env(mnist_dir))
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"trust.py: {run} has no reject threshold; run `mnistlab calibrate {run}` first"
    ]
    assert not (tmp_path / "t.md").exists() and not (tmp_path / "t.json").exists()
