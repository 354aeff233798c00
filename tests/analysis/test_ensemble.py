"""``mnistlab ensemble`` (``analysis/ensemble.py``): what it refuses, in one line, and
(marked slow) an ensemble of real MNIST runs against its members' probabilities,
through evaluate, predict (plain, TTA, numbers, ONNX) and inspect."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from mnistlab import load_checkpoint
from mnistlab.cli import main
from mnistlab.models import (
    create_model,
)
from mnistlab.runs.checkpoint import save_checkpoint
from mnistlab.serve.predict import load_predictor
from tests.support.cli import error_from, run_main
from tests.support.references import (
    MNIST_MEAN,
    MNIST_STD,
    ece,
    ort_session,
    tta_probs_by_hand,
)

# --- bad input that needs no trained model (one line, no traceback) ------------------


def test_ensemble_of_one_run_is_refused(saved_runs, tmp_path, capsys):
    runs, _ = saved_runs
    assert main(["ensemble", str(runs[0]), "-o", str(tmp_path / "e")]) == 2
    error_from(capsys, "at least 2 runs")
    assert not (tmp_path / "e").exists()


def test_a_run_given_twice_is_refused(saved_runs, tmp_path, capsys):
    runs, _ = saved_runs
    again = runs[0].parent / "." / runs[0].name  # the same folder, spelled otherwise
    assert (
        main(["ensemble", str(runs[0]), str(runs[1]), str(again), "-o", str(tmp_path / "e")]) == 2
    )
    error_from(capsys, "is given twice")
    assert not (tmp_path / "e").exists()


def test_ensemble_into_a_folder_holding_a_model_is_refused(saved_runs, capsys):
    runs, _ = saved_runs
    before = (runs[0] / "best.json").read_bytes()
    weights = (runs[0] / "best.safetensors").read_bytes()
    # writing the ensemble over one of its own members
    assert main(["ensemble", str(runs[0]), str(runs[1]), "-o", str(runs[0])]) == 2
    error_from(capsys, "already holds a model")
    assert (runs[0] / "best.json").read_bytes() == before
    assert (runs[0] / "best.safetensors").read_bytes() == weights
    assert not (runs[0] / "ensemble.json").exists()


@pytest.mark.parametrize("what", ["empty folder", "missing", "image"])
def test_ensemble_of_something_that_is_not_a_run_is_refused(saved_runs, tmp_path, capsys, what):
    runs, png = saved_runs
    other = {"empty folder": tmp_path / "empty", "missing": tmp_path / "nope", "image": png}[what]
    if what == "empty folder":
        other.mkdir()
    assert main(["ensemble", str(runs[0]), str(other), "-o", str(tmp_path / "e")]) == 1
    error_from(capsys, "no checkpoint at")
    assert not (tmp_path / "e" / "best.json").exists()


def test_ensemble_of_runs_with_other_classes_is_refused(saved_runs, tmp_path, capsys):
    runs, _ = saved_runs
    letters = tmp_path / "letters"
    letters.mkdir()
    save_checkpoint(letters / "best", create_model("cnn", class_names=list("abcdefghij")), {})
    assert main(["ensemble", str(runs[0]), str(letters), "-o", str(tmp_path / "e")]) == 1
    error_from(capsys, "same classes")


# --- the command line on real MNIST (slow: trains) -----------------------------------


@pytest.fixture(scope="module")
def second_run(tmp_path_factory):
    """A cheap second run of another architecture and another normalisation: ``fast``,
    one epoch on 2,000 images without outliers, mean 0.5 / std 0.5, seed 1 (about 80% on
    MNIST test)."""
    out = tmp_path_factory.mktemp("fast-cli")
    cmd = ["train", "--model", "fast", "--epochs", "1", "--augment", "none"]
    cmd += ["--train-subset", "2000", "--mean", "0.5", "--std", "0.5", "--seed", "1"]
    cmd += ["--outliers", "0", "--threads", "1", "--out-dir", str(out)]
    proc = run_main(*cmd)
    assert proc.returncode == 0, proc.stderr
    (run,) = out.iterdir()
    return run


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, trained_run, second_run):
    """(folder, completed process) of ``mnistlab ensemble CNN FAST -o DIR``."""
    out = tmp_path_factory.mktemp("ens") / "ens"
    return out, run_main("ensemble", trained_run, second_run, "-o", out, "--device", "cpu")


def _member_probs(run, images: torch.Tensor) -> torch.Tensor:
    """Softmax(logits / T) of a run's best model, from its files: the architecture built
    fresh (no temperature), the weights read with safetensors, normalised and divided
    by the stored temperature here."""
    doc = json.loads((run / "best.json").read_text())
    meta = doc["model"]
    model = create_model(meta["name"], **meta["kwargs"])
    model.load_state_dict(load_file(str(run / doc["weights"])))
    model.eval()
    x = (images.float() / 255 - meta["mean"]) / meta["std"]
    with torch.no_grad():
        z = torch.cat([model(x[i : i + 2000]) for i in range(0, len(x), 2000)]).double()
    return F.softmax(z / meta["temperature"], 1)


def _digit_png(path, pixels: np.ndarray, scale: int = 4) -> None:
    """A 28x28 MNIST digit as dark ink on white paper, enlarged."""
    Image.fromarray(255 - pixels).resize((28 * scale, 28 * scale), Image.BICUBIC).save(path)


@pytest.mark.slow
def test_ensemble_cli_is_the_mean_of_the_members(ensemble_run, trained_run, second_run, mnist):
    out, proc = ensemble_run
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "best.json",
        "best.onnx",
        "best.safetensors",
        "ensemble.json",
    ]
    assert "calibrated: temperature" in proc.stdout and "ensemble of 2" in proc.stdout

    x, y = mnist.test
    pa, pb = _member_probs(trained_run, x), _member_probs(second_run, x)
    mean = (pa + pb) / 2
    acc = [(p.argmax(1) == y).double().mean().item() for p in (pa, pb, mean)]
    summary = json.loads((out / "ensemble.json").read_text())
    rows = summary["test"]
    assert [r["architecture"] for r in rows] == ["cnn", "fast", "ensemble"]
    for row, want in zip(rows, acc, strict=True):
        assert row["test_accuracy"] == pytest.approx(want, abs=1.5e-4), row  # at most 1 image
    assert acc[0] > 0.97 and 0.5 < acc[1] < acc[0]  # two real, different models

    # the saved ensemble, its own temperature undone, gives that mean probability
    model, doc = load_checkpoint(out)
    members = doc["model"]["kwargs"]["members"]
    assert [(m["name"], m["mean"], m["std"]) for m in members] == [
        ("cnn", MNIST_MEAN, MNIST_STD),
        ("fast", 0.5, 0.5),
    ]
    assert [r["run"] for r in doc["ensemble"]["members"]] == [str(trained_run), str(second_run)]
    t = doc["model"]["temperature"]
    assert t == summary["calibration"]["temperature"] and t != 1.0
    assert "training images" in summary["calibration"]["fitted_on"]  # no shared val split
    with torch.no_grad():
        z = torch.cat(
            [
                model((x[i : i + 2000].float() / 255 - MNIST_MEAN) / MNIST_STD)
                for i in range(0, 10_000, 2000)
            ]
        ).double()
    assert torch.allclose(torch.softmax(z * t, 1), mean, atol=1e-5)
    e = torch.exp(torch.log(mean) / t)
    assert torch.allclose(torch.softmax(z, 1), e / e.sum(1, keepdim=True), atol=1e-5)
    assert rows[2]["test_ece"] == pytest.approx(
        ece((e / e.sum(1, keepdim=True)).numpy(), y.numpy()), abs=1e-4
    )


@pytest.mark.slow
def test_evaluate_ensemble_agrees_with_ensemble_json(ensemble_run, capsys):
    out, proc = ensemble_run
    assert proc.returncode == 0, proc.stderr
    assert main(["evaluate", str(out), "--device", "cpu"]) == 0
    res = json.loads((out / "eval" / "eval.json").read_text())
    summary = json.loads((out / "ensemble.json").read_text())
    row = summary["test"][-1]
    assert res["model"] == "ensemble" and res["n"] == 10_000
    assert res["accuracy"] == row["test_accuracy"]
    assert res["ece"] == pytest.approx(row["test_ece"], abs=1e-6)
    assert res["temperature"] == summary["calibration"]["temperature"]
    assert res["ece_uncalibrated"] == pytest.approx(
        summary["calibration"]["test_ece_before"], abs=1e-6
    )
    assert f"accuracy {res['accuracy']:.2%}" in capsys.readouterr().out


@pytest.mark.slow
def test_predict_ensemble_plain_tta_number_and_onnx(ensemble_run, mnist, tmp_path, capsys):
    pytest.importorskip("scipy")
    out, proc = ensemble_run
    assert proc.returncode == 0, proc.stderr
    from mnistlab.serve.preprocess import load_digit

    x, y = mnist.test
    png = tmp_path / "seven.png"
    _digit_png(png, x[0, 0].numpy())
    assert int(y[0]) == 7
    model, _ = load_checkpoint(out)
    m = model.meta
    digit = torch.from_numpy(load_digit(png)).float()[None, None] / 255  # what predict sees

    assert main(["predict", str(out), str(png), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)[0]
    with torch.no_grad():
        p = torch.softmax(model((digit - m.mean) / m.std).double(), 1)[0]
    assert plain["label"] == "7" == str(int(p.argmax()))
    assert plain["confidence"] == pytest.approx(p.max().item(), abs=1e-5)

    assert main(["predict", "--tta", str(out), str(png), "--json"]) == 0
    tta = json.loads(capsys.readouterr().out)[0]
    want = tta_probs_by_hand(model, digit, m.mean, m.std)[0]
    assert tta["label"] == "7" == str(int(want.argmax()))
    assert tta["confidence"] == pytest.approx(want.max().item(), abs=1e-5)

    # a number: the first two test digits (7 and 2) side by side, dark on white
    canvas = np.zeros((48, 100), np.uint8)
    canvas[10:38, 14:42] = x[0, 0].numpy()
    canvas[10:38, 58:86] = x[1, 0].numpy()
    row = tmp_path / "row.png"
    Image.fromarray(255 - canvas).resize((400, 192), Image.BILINEAR).save(row)
    assert int(y[1]) == 2
    assert main(["predict", "--number", str(out), str(row), "--json"]) == 0
    number = json.loads(capsys.readouterr().out)[0]
    assert number["number"] == "72" and len(number["digits"]) == 2
    assert main(["predict", "--number", "--tta", str(out), str(row)]) == 0
    assert capsys.readouterr().out.startswith(f"{row}: 72 (")

    # exported: one ONNX graph with the ensemble's logits, read by predict
    onnx_path = tmp_path / "x.onnx"
    assert main(["export", str(out), "-o", str(onnx_path)]) == 0
    capsys.readouterr()
    imgs = (x[:200].float() / 255 - m.mean) / m.std
    with torch.no_grad():
        want_logits = model(imgs).numpy()
    got = ort_session(str(onnx_path)).run(None, {"input": imgs.numpy()})[0]
    assert np.abs(got - want_logits).max() <= 1e-4
    assert main(["predict", str(onnx_path), str(png), "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)[0]
    assert from_onnx["label"] == plain["label"]
    assert from_onnx["confidence"] == pytest.approx(plain["confidence"], abs=1e-5)


@pytest.mark.slow
def test_the_ensembles_own_onnx_file_answers_as_torch_does(ensemble_run, mnist):
    out, proc = ensemble_run
    assert proc.returncode == 0, proc.stderr
    digits = mnist.test[0][:1000, 0].numpy()  # (1000, 28, 28) uint8
    onnx, torch_ = load_predictor(out), load_predictor(out, backend="torch")
    assert (onnx.backend, torch_.backend) == ("onnxruntime", "torch")
    p_onnx, p_torch = onnx.probs(digits), torch_.probs(digits)
    assert (p_onnx.argmax(1) == p_torch.argmax(1)).all()
    assert np.abs(p_onnx - p_torch).max() < 1e-5


@pytest.mark.slow
def test_inspect_ensemble_writes_a_folder_per_member(ensemble_run, capsys):
    out, proc = ensemble_run
    assert proc.returncode == 0, proc.stderr
    assert main(["inspect", str(out), "--index", "3"]) == 0
    folder = out / "inspect"
    assert sorted(p.name for p in folder.iterdir()) == ["member0-cnn", "member1-fast"]
    for sub in folder.iterdir():
        files = sorted(p.name for p in sub.iterdir())
        assert files == [
            "features_00_conv1.png",
            "features_01_conv2.png",
            "input.png",
            "kernels_conv1.png",
            "kernels_conv2.png",
        ], sub
        assert all((sub / f).read_bytes()[:4] == b"\x89PNG" for f in files)
    said = capsys.readouterr().out
    assert "member 0 (cnn)" in said and "member 1 (fast)" in said
