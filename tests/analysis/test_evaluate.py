"""Metrics against hand-computed values; evaluate and inspect on a real trained model."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from mnistlab import TrainConfig, fit, load_checkpoint
from mnistlab.analysis.evaluate import reject_summary
from mnistlab.analysis.inspect import conv_kernels, feature_maps
from mnistlab.analysis.metrics import calibration, confident_mistakes, confusion_matrix, per_class
from mnistlab.cli import main
from mnistlab.models import create_model
from mnistlab.train import evaluate, make_loss
from tests.support.cli import error_line, fails, immutable, run_cli
from tests.support.images import thin_png
from tests.support.references import (
    MNIST_MEAN,
    MNIST_STD,
    ece,
    views_by_hand,
)


def test_confusion_and_per_class_by_hand():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    preds = torch.tensor([0, 0, 1, 1, 2, 2])
    cm = confusion_matrix(labels, preds, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    rows = per_class(cm)
    # class 0: tp 2, predicted 2, actual 3 -> precision 1, recall 2/3
    assert rows[0]["precision"] == 1.0 and rows[0]["recall"] == pytest.approx(2 / 3)
    # class 1: tp 1, predicted 2, actual 2 -> 0.5, 0.5; class 2: tp 1, predicted 2, actual 1
    assert (rows[1]["precision"], rows[1]["recall"]) == (0.5, 0.5)
    assert (rows[2]["precision"], rows[2]["recall"], rows[2]["support"]) == (0.5, 1.0, 1)
    assert rows[2]["f1"] == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_ece_by_hand():
    # confidences 0.85, 0.85 (one right), 0.55, 0.55 (both right), 10 bins:
    # bin (0.8, 0.9]: 2/4 * |0.5 - 0.85| = 0.175; bin (0.5, 0.6]: 2/4 * |1 - 0.55| = 0.225
    probs = torch.tensor([[0.85, 0.15], [0.85, 0.15], [0.45, 0.55], [0.45, 0.55]])
    labels = torch.tensor([0, 1, 1, 1])
    cal = calibration(probs, labels, bins=10)
    assert cal["ece"] == pytest.approx(0.175 + 0.225)
    counts = [b["count"] for b in cal["bins"]]
    assert counts[8] == 2 and counts[5] == 2 and sum(counts) == 4


def test_perfectly_confident_and_right_has_zero_ece():
    probs = torch.eye(3)[[0, 1, 2, 1]]
    assert calibration(probs, torch.tensor([0, 1, 2, 1]))["ece"] == 0.0


def test_confident_mistakes_are_wrong_and_sorted():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.99, 0.01]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    assert confident_mistakes(probs, labels, k=5).tolist() == [4, 1, 2]


def test_reject_summary_by_hand():
    # digit scores 0.9, 0.6, 0.7, 0.55, 0.99; at 0.65 images 1 and 3 are turned away.
    # Right: 0, 1, 3; wrong: 2 and 4 (0 for 1). Kept (0, 2, 4) and right: 0 only
    probs = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.45, 0.55], [0.99, 0.01]])
    labels = torch.tensor([0, 1, 1, 1, 1])
    r = reject_summary(probs, labels, 0.65)
    assert (r["rejected"], r["kept"], r["rejected_rate"]) == (2, 3, 0.4)
    assert r["accuracy_rejected_wrong"] == pytest.approx(1 / 5)
    assert r["accuracy_kept"] == pytest.approx(1 / 3)
    assert r["threshold"] == 0.65 and r["note"] == ""
    none = reject_summary(probs, labels, None)
    assert (none["rejected"], none["kept"]) == (0, 5) and "calibrate" in none["note"]
    assert none["accuracy_kept"] == none["accuracy_rejected_wrong"] == pytest.approx(3 / 5)
    everything = reject_summary(probs, labels, 1.0)
    assert everything["rejected"] == 5 and everything["accuracy_kept"] is None


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(
        model="cnn",
        epochs=1,
        train_subset=4000,
        val_size=500,
        # evaluate is checked here, not the reject option: one short epoch with outliers
        # lands near 77%, too unsure for the uncalibrated ECE bound below
        outliers=0.0,
        out_dir=str(out),
        data_dir=str(mnist_dir),
    )
    return fit(cfg).run_dir


@pytest.mark.slow
def test_evaluate_cli_writes_pictures_and_agrees_with_evaluate(small_run, mnist, capsys):
    assert main(["evaluate", str(small_run)]) == 0
    res = json.loads((small_run / "eval" / "eval.json").read_text())
    model, _ = load_checkpoint(small_run)
    ev = evaluate(model, *mnist.test, 0.1307, 0.3081, make_loss("ce"))
    assert res["accuracy"] == ev["acc"] and res["n"] == 10_000
    assert res["confusion"] == ev["confusion"].tolist()
    assert 0 <= res["ece"] < 0.2
    for name in ("confusion", "mistakes", "predictions", "reliability"):
        png = small_run / "eval" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG", name
    wrong = res["mistakes"]
    assert wrong and all(m["true"] != m["predicted"] for m in wrong)
    assert [m["confidence"] for m in wrong] == sorted(
        (m["confidence"] for m in wrong), reverse=True
    )
    out = capsys.readouterr().out
    assert f"accuracy {100 * res['accuracy']:.2f}%" in out and "precision" in out


@pytest.mark.slow
def test_feature_maps_and_kernels_have_the_documented_shapes(small_run, mnist):
    model, _ = load_checkpoint(small_run)
    maps = feature_maps(model, mnist.test[0][0])
    assert [(n, tuple(t.shape)) for n, t in maps[:-1]] == [
        ("conv1", (10, 24, 24)),
        ("conv2", (20, 8, 8)),
    ]
    assert maps[-1][0] == "softmax" and maps[-1][1].sum().item() == pytest.approx(1.0)
    assert [tuple(w.shape) for _, w in conv_kernels(model)] == [(10, 1, 5, 5), (20, 10, 5, 5)]


@pytest.mark.slow
def test_inspect_cli(small_run, capsys):
    assert main(["inspect", str(small_run), "--index", "7"]) == 0
    files = sorted(p.name for p in (small_run / "inspect").iterdir())
    assert files == [
        "features_00_conv1.png",
        "features_01_conv2.png",
        "input.png",
        "kernels_conv1.png",
        "kernels_conv2.png",
    ]
    assert main(["inspect", str(small_run), "--index", "10000"]) == 2
    assert "--index" in capsys.readouterr().err


@pytest.mark.slow
def test_inspect_own_image(small_run, tmp_path, mnist):

    Image.fromarray(255 - mnist.test[0][0, 0].numpy()).resize((90, 90)).save(tmp_path / "d.png")
    assert (
        main(
            [
                "inspect",
                str(small_run),
                "--image",
                str(tmp_path / "d.png"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    assert (tmp_path / "o" / "input.png").is_file()
    assert main(["inspect", str(small_run), "--image", str(tmp_path / "missing.png")]) == 1


@pytest.mark.slow
def test_evaluate_out_onto_a_file_or_under_one(tiny_run, tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    line = fails(["evaluate", str(tiny_run), "--out", str(a_file)], 2, capsys)
    assert "--out" in line and str(a_file) in line and "folder" in line
    assert a_file.read_text() == "mine"
    under = a_file / "eval"
    line = fails(["evaluate", str(tiny_run), "--out", str(under)], 1, capsys)
    assert str(under) in line and "is a file, not a folder" in line


@pytest.mark.slow
def test_evaluate_out_into_a_locked_folder(tiny_run, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    with immutable(locked):
        line = fails(["evaluate", str(tiny_run), "--out", str(locked)], 1, capsys)
    assert str(locked) in line and "not permitted" in line


@pytest.mark.slow
@pytest.mark.parametrize("locked", ["run", "its folder"])
@pytest.mark.parametrize("command", ["evaluate", "inspect"])
def test_a_locked_run_folder_says_to_use_out(command, locked, tiny_run_copy, tmp_path, capsys):
    pictures = tiny_run_copy / ("eval" if command == "evaluate" else "inspect")
    if locked == "its folder":  # it exists, but nothing can be written in it
        pictures.mkdir()
    with immutable(tiny_run_copy if locked == "run" else pictures):
        line = fails([command, str(tiny_run_copy)], 1, capsys)
    assert f"cannot write {pictures} " in line and "give --out a folder you can write" in line
    assert main([command, str(tiny_run_copy), "--out", str(tmp_path / "elsewhere")]) == 0


def test_inspect_image_on_a_thin_image(untrained_run, tmp_path, mnist_dir):
    thin = thin_png(tmp_path / "thin.png", 10000, 2)
    proc = run_cli(mnist_dir, "inspect", untrained_run, "--image", thin, "--out", tmp_path / "insp")
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stderr
    if proc.returncode:
        error_line(proc, proc.returncode)


@pytest.fixture(scope="module")
def tta_eval(trained_run, mnist, mnist_dir, tmp_path_factory):
    """eval.json of ``mnistlab evaluate --tta CNN``, what it printed, the stored
    temperature, and the cnn's raw logits (T = 1) on the 7 test views made by hand."""
    pytest.importorskip("scipy")
    out = tmp_path_factory.mktemp("tta-eval")
    with contextlib.redirect_stdout(io.StringIO()) as said:
        args = ["evaluate", "--tta", str(trained_run), "--out", str(out), "--device", "cpu"]
        rc = main([*args, "--data-dir", str(mnist_dir)])
    assert rc == 0
    res = json.loads((out / "eval.json").read_text())
    t = json.loads((trained_run / "best.json").read_text())["model"]["temperature"]
    model = create_model("cnn")  # no temperature: divided by hand
    model.load_state_dict(load_file(str(trained_run / "best.safetensors")))
    model.eval()
    raw = mnist.test[0].float() / 255
    with torch.no_grad():
        z = torch.stack(
            [model((v - MNIST_MEAN) / MNIST_STD).double() for v in views_by_hand(raw)]
        )  # (7, N, C)
    return res, said.getvalue(), t, z


@pytest.mark.slow
def test_evaluate_tta_is_the_tta_of_the_model(tta_eval, mnist):
    res, said, t, z = tta_eval
    assert "cnn with TTA" in said
    y = mnist.test[1]
    probs = F.softmax(z / t, 2).mean(0)  # the calibrated model's TTA
    acc = (probs.argmax(1) == y).double().mean().item()
    assert res["accuracy"] == pytest.approx(acc, abs=1.5e-4)
    assert res["ece"] == pytest.approx(ece(probs.numpy(), y.numpy()), abs=1e-4)
    assert res["temperature"] == t


@pytest.mark.slow
def test_evaluate_tta_reports_the_uncalibrated_tta_ece(tta_eval, mnist):
    """``ece_uncalibrated`` with --tta: the ECE of the same TTA without the temperature
    (the mean over the views of softmax(z)), the number calibration is measured against."""
    res, _, _, z = tta_eval
    y = mnist.test[1]
    probs = F.softmax(z, 2).mean(0)  # T = 1
    assert res["ece_uncalibrated"] == pytest.approx(ece(probs.numpy(), y.numpy()), abs=1e-3)
