"""The reject option from the command line: ``predict`` says "not a digit" (exit 0),
``--json`` carries the digit score, ``--accept-all`` forces a digit, ``evaluate``
counts the MNIST test digits turned away. Real subprocesses on real files; every
expectation is worked out here from the model's own probabilities."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistlab.serve.predict import load_predictor
from mnistlab.serve.preprocess import load_digit
from tests.support.processes import cli_env
from tests.support.rejecting import between, scribble, with_threshold

pytestmark = pytest.mark.slow  # every test here needs the trained cnn


def mnistlab(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnistlab", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory, mnist) -> Path:
    """Three real MNIST test digits, black on white, and a scribble that is no digit."""
    folder = tmp_path_factory.mktemp("reject-imgs")
    x, y = mnist.test
    for i in range(3):
        big = Image.fromarray(255 - x[i, 0].numpy()).resize((140, 140), Image.BICUBIC)
        big.save(folder / f"digit{i}_{int(y[i])}.png")
    scribble().save(folder / "scribble.png")
    return folder


@pytest.fixture(scope="module")
def truth(trained_run, images) -> dict:
    """{file: probabilities (C,)} from the model itself, one image at a time."""
    predictor = load_predictor(trained_run)
    return {str(f): predictor.probs(load_digit(str(f))[None])[0] for f in sorted(images.iterdir())}


@pytest.fixture(scope="module")
def gated(trained_run, truth, tmp_path_factory) -> tuple[Path, float]:
    """(run, threshold): the threshold just above the scribble's score, so the scribble
    and whatever scores no higher are "not a digit", the rest digits."""
    scores = sorted(p.max() for p in truth.values())
    low = next(p.max() for f, p in truth.items() if f.endswith("scribble.png"))
    above = [s for s in scores if s > low + 1e-4]
    assert above, f"the scribble scores {low:.4f}, as much as every real digit: {scores}"
    t = between(low, above[0])
    return with_threshold(trained_run, tmp_path_factory.mktemp("gated") / "run", t), t


@pytest.fixture(scope="module")
def open_run(trained_run, tmp_path_factory) -> Path:
    """The run with no reject threshold, as before calibration fitted one."""
    return with_threshold(trained_run, tmp_path_factory.mktemp("open") / "run", None)


def test_a_rejected_image_prints_not_a_digit_and_exits_0(gated, images, truth, mnist_dir):
    run, t = gated
    proc = mnistlab("predict", str(run), str(images), env=cli_env(mnist_dir))
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.strip().splitlines())
    assert set(lines) == set(truth)
    for f, p in truth.items():
        if p.max() < t:
            assert lines[f] == f"not a digit (digit score {p.max():.0%}; best guess {p.argmax()})"
        else:
            assert lines[f].startswith(f"{p.argmax()} ({p.max():.1%})  top 3: ")
    assert lines[str(images / "scribble.png")].startswith("not a digit")
    assert proc.stderr == ""


def test_json_answers_carry_the_digit_score_and_not_digit(gated, images, truth, mnist_dir):
    run, t = gated
    proc = mnistlab("predict", str(run), str(images), "--json", env=cli_env(mnist_dir))
    assert proc.returncode == 0, proc.stderr
    answers = {a["file"]: a for a in json.loads(proc.stdout)}
    assert set(answers) == set(truth)
    for f, p in truth.items():
        a = answers[f]
        rejected = bool(p.max() < t)
        assert a["not_digit"] is rejected
        assert a["digit_score"] == pytest.approx(p.max(), abs=1e-5)
        assert 0 <= a["digit_score"] <= 1
        assert a["best_guess"] == str(p.argmax())
        assert a["probabilities"] == pytest.approx(p.tolist(), abs=1e-5)
        assert [x["label"] for x in a["top3"]] == [str(i) for i in np.argsort(-p)[:3]]
        if rejected:
            assert a["label"] is None and a["confidence"] is None
        else:
            assert a["label"] == a["best_guess"] and a["confidence"] == a["digit_score"]
    assert answers[str(images / "scribble.png")]["not_digit"] is True


def test_accept_all_answers_a_digit_and_still_scores_it(gated, images, truth, mnist_dir):
    run, _ = gated
    path = str(images / "scribble.png")
    proc = mnistlab("predict", str(run), path, "--json", "--accept-all", env=cli_env(mnist_dir))
    assert proc.returncode == 0, proc.stderr
    (a,) = json.loads(proc.stdout)
    p = truth[path]
    assert a["not_digit"] is False and a["label"] == a["best_guess"] == str(p.argmax())
    assert a["digit_score"] == pytest.approx(p.max(), abs=1e-5)
    text = mnistlab("predict", str(run), path, "--accept-all", env=cli_env(mnist_dir))
    assert text.returncode == 0 and text.stdout.startswith(f"{path}: {p.argmax()} (")


def test_an_exported_onnx_model_keeps_the_threshold(gated, images, truth, tmp_path, mnist_dir):
    run, _ = gated
    onnx = tmp_path / "gated.onnx"
    env = cli_env(mnist_dir)
    assert mnistlab("export", str(run), "--out", str(onnx), env=env).returncode == 0
    path = str(images / "scribble.png")
    proc = mnistlab("predict", str(onnx), path, env=env)
    assert proc.returncode == 0, proc.stderr
    p = truth[path]
    assert proc.stdout == (
        f"{path}: not a digit (digit score {p.max():.0%}; best guess {p.argmax()})\n"
    )


def test_no_threshold_rejects_nothing(open_run, images, truth, mnist_dir):
    proc = mnistlab("predict", str(open_run), str(images), "--json", env=cli_env(mnist_dir))
    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout)
    assert len(answers) == len(truth)
    assert all(a["not_digit"] is False and a["label"] == a["best_guess"] for a in answers)
    assert all(a["digit_score"] == pytest.approx(truth[a["file"]].max(), abs=1e-5) for a in answers)


@pytest.fixture(scope="module")
def mnist_test_probs(trained_run, mnist) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (10000, C), labels (10000,)) for MNIST test, from the predictor."""
    x, y = mnist.test
    predictor = load_predictor(trained_run)
    probs = np.concatenate(
        [predictor.probs(x[i : i + 1000, 0].numpy()) for i in range(0, 10_000, 1000)]
    )
    return probs, y.numpy()


def test_evaluate_counts_the_test_digits_turned_away(
    trained_run, mnist_test_probs, tmp_path, mnist_dir
):
    probs, labels = mnist_test_probs
    scores = np.sort(probs.max(1))
    # about 3% turned away: a threshold in the first clear gap from there on
    k = next(i for i in range(300, 2000) if scores[i + 1] - scores[i] > 1e-4)
    t = between(scores[k], scores[k + 1])
    run = with_threshold(trained_run, tmp_path / "run", t)
    proc = mnistlab("evaluate", str(run), env=cli_env(mnist_dir))
    assert proc.returncode == 0, proc.stderr

    kept = probs.max(1) >= t
    right = probs.argmax(1) == labels
    r = json.loads((run / "eval" / "eval.json").read_text())["reject"]
    assert r["threshold"] == t
    assert r["rejected"] == k + 1 == (~kept).sum() and r["kept"] == kept.sum()
    assert r["rejected_rate"] == pytest.approx((k + 1) / 10_000)
    assert r["accuracy_rejected_wrong"] == pytest.approx((right & kept).sum() / 10_000)
    assert r["accuracy_kept"] == pytest.approx((right & kept).sum() / kept.sum())
    assert f"not a digit: {k + 1:,} ({(k + 1) / 10_000:.2%})" in proc.stdout

    # the run report shows the same count, from that eval.json
    assert mnistlab("report", str(run), env=cli_env(mnist_dir)).returncode == 0
    page = (run / "report.html").read_text()
    assert f"<b>{k + 1:,} ({(k + 1) / 10_000:.2%})</b>" in page


def test_evaluate_without_a_threshold_rejects_nothing_and_says_so(open_run, tmp_path, mnist_dir):
    out = tmp_path / "eval"
    proc = mnistlab("evaluate", str(open_run), "--out", str(out), env=cli_env(mnist_dir))
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "eval.json").read_text())["reject"]
    assert r["threshold"] is None and r["rejected"] == 0 and r["kept"] == 10_000
    assert r["accuracy_kept"] == r["accuracy_rejected_wrong"]
    assert "no reject threshold (calibrate the run)" in proc.stdout
