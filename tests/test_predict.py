"""predict and export, the way a user runs them: files, folders, globs, stdin, ONNX."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from mnistlab import load_checkpoint
from mnistlab.cli import main
from mnistlab.data import normalize

pytestmark = pytest.mark.slow  # every test here needs the trained cnn


@pytest.fixture(scope="module")
def run(trained_run):
    return trained_run


@pytest.fixture(scope="module")
def images(tmp_path_factory, mnist):
    """Three real digits saved as black-on-white PNGs, plus two bad files."""
    folder = tmp_path_factory.mktemp("imgs")
    x, y = mnist.test
    for i in range(3):
        big = Image.fromarray(255 - x[i, 0].numpy()).resize((140, 140), Image.BICUBIC)
        big.save(folder / f"digit{i}_{int(y[i])}.png")
    (folder / "notes.txt.png").write_bytes(b"this is not an image")
    Image.new("RGB", (50, 50), "white").save(folder / "blank.png")
    return folder


def test_predict_a_folder_with_bad_files(run, images, capsys):
    assert main(["predict", str(run), str(images)]) == 1  # two bad files in the batch
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        name = line.split(":")[0]
        true = name.rsplit("_", 1)[1].split(".")[0]
        assert f": {true} (" in line and "top 3:" in line
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)
    assert any("blank.png: no ink found" in e for e in errors)
    assert any("notes.txt.png: not an image" in e for e in errors)
    assert "Traceback" not in err


def test_predict_json_glob_and_show(run, images, tmp_path, capsys):
    show = tmp_path / "show.png"
    pattern = str(images / "digit*.png")
    assert main(["predict", str(run), pattern, "--json", "--show", str(show)]) == 0
    data = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert [d["file"].rsplit("/", 1)[1] for d in data] == sorted(
        p.name for p in images.glob("digit*")
    )
    for d in data:
        assert d["label"] == d["file"].rsplit("_", 1)[1][0]
        assert len(d["top3"]) == 3 and d["top3"][0]["probability"] == d["confidence"]
        assert sum(t["probability"] for t in d["top3"]) <= 1 + 1e-9
        assert d["not_digit"] is False and d["digit_score"] == d["confidence"]
        assert sum(d["probabilities"]) == pytest.approx(1)
    assert Image.open(show).size[1] > 300


def test_predict_from_stdin(run, images):
    data = next(images.glob("digit0_*.png")).read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "mnistlab", "predict", str(run), "-"],
        input=data,
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().startswith("-: 7 (")  # the first MNIST test digit is a 7


def test_onnx_gives_torch_logits_on_1000_test_images(run, mnist, tmp_path, capsys):
    path = tmp_path / "model.onnx"
    assert main(["export", str(run), "--format", "onnx", "-o", str(path)]) == 0
    model, _ = load_checkpoint(run)
    x = normalize(mnist.test[0][:1000], model.meta.mean, model.meta.std)
    with torch.no_grad():
        want = model(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    assert got.shape == (1000, 10)
    assert np.abs(got - want).max() <= 1e-4


def test_predict_from_onnx_matches_the_checkpoint(run, images, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    assert main(["export", str(run), "-o", str(path)]) == 0
    capsys.readouterr()
    files = sorted(str(p) for p in images.glob("digit*.png"))
    assert main(["predict", str(path), *files, "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)
    assert main(["predict", str(run), *files, "--json"]) == 0
    from_ckpt = json.loads(capsys.readouterr().out)
    assert [d["label"] for d in from_onnx] == [d["label"] for d in from_ckpt]
    for a, b in zip(from_onnx, from_ckpt, strict=True):
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-5)


def test_torchscript_export_carries_metadata(run, tmp_path):
    path = tmp_path / "m.pt"
    assert main(["export", str(run), "--format", "torchscript", "-o", str(path)]) == 0
    files = {"mnistlab.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=files)
    meta = json.loads(files["mnistlab.json"])
    assert meta["name"] == "cnn" and meta["class_names"][3] == "3"
    model, _ = load_checkpoint(run)
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(loaded(x), model(x), atol=1e-5)


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["predict", "RUN", "/no/such.png"], 1, "no/such.png: file not found"),
        (["predict", "RUN", "/tmp/*.nothing-matches"], 2, "no files match"),
        (["predict", "/no/run", "x.png"], 1, "no checkpoint"),
        (["export", "RUN", "--format", "tflite"], 2, "--format must be onnx or torchscript"),
    ],
)
def test_bad_predict_and_export_input(run, args, code, needle, capsys):
    args = [str(run) if a == "RUN" else a for a in args]
    assert main(args) == code
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
