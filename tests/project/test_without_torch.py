"""Using a trained model without PyTorch: the run folder's own ONNX file, checked by
its hash, answers ``predict`` and ``serve`` exactly as torch does, and neither loads
torch to do it (a process's ``sys.modules``, and a server's memory map, say so)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistlab.models import set_temperature
from mnistlab.runs.checkpoint import load_checkpoint
from mnistlab.serve.export import export_onnx
from mnistlab.serve.predict import load_predictor
from tests.support.files import copy_run
from tests.support.images import png, row_png
from tests.support.processes import Server, cli_env

pytestmark = pytest.mark.slow  # every test here needs the trained cnn


@pytest.fixture(scope="module")
def run_copy(trained_run, tmp_path_factory) -> Path:
    """A copy of the trained run that tests may damage."""
    return copy_run(trained_run, tmp_path_factory.mktemp("copy") / "run")


def _python(code: str, mnist_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(mnist_dir),
    )


def test_training_leaves_the_onnx_export_and_its_hash_in_the_run(trained_run):
    doc = json.loads((trained_run / "best.json").read_text())
    assert doc["onnx"] == "best.onnx"
    written = (trained_run / "best.onnx").read_bytes()
    assert hashlib.sha256(written).hexdigest() == doc["onnx_sha256"]
    assert doc["parameters"] == load_predictor(trained_run, backend="torch").params


def test_the_runs_onnx_file_answers_as_torch_does(trained_run, mnist):
    digits = mnist.test[0][:1000, 0].numpy()  # (1000, 28, 28) uint8
    onnx = load_predictor(trained_run)  # auto: the run's best.onnx
    torch_ = load_predictor(trained_run, backend="torch")
    assert onnx.backend == "onnxruntime" and torch_.backend == "torch"
    p_onnx, p_torch = onnx.probs(digits), torch_.probs(digits)
    assert (p_onnx.argmax(1) == p_torch.argmax(1)).all()
    assert np.abs(p_onnx - p_torch).max() < 1e-5
    assert onnx.reject_threshold == torch_.reject_threshold is not None
    assert onnx.params == torch_.params


def test_an_uncalibrated_export_answers_as_torch_does(trained_run, mnist, tmp_path):
    model, _ = load_checkpoint(trained_run)
    set_temperature(model, 1.0)  # the plain model: logits as trained
    export_onnx(model, tmp_path / "plain.onnx")
    digits = mnist.test[0][:1000, 0].numpy()
    import torch

    x = torch.from_numpy(digits[:, None]).float().div(255).sub(model.meta.mean) / model.meta.std
    with torch.no_grad():
        expected = torch.softmax(model(x).double(), 1).numpy()
    got = load_predictor(tmp_path / "plain.onnx").probs(digits)
    assert (got.argmax(1) == expected.argmax(1)).all()
    assert np.abs(got - expected).max() < 1e-5


def test_predict_and_read_a_number_from_the_onnx_file_without_torch(trained_run, mnist, tmp_path):
    digits = mnist.test[0][:4, 0].numpy()
    labels = "".join(str(int(v)) for v in mnist.test[1][:4])
    (tmp_path / "one.png").write_bytes(png(digits[0]))
    (tmp_path / "row.png").write_bytes(row_png(list(digits)))
    code = f"""
import io, json, sys, contextlib
from mnistlab.cli import main
for args in (["{trained_run}", "{tmp_path}/one.png", "--json"],
             ["{trained_run / "best.onnx"}", "{tmp_path}/one.png", "--json"],
             ["{trained_run}", "{tmp_path}/row.png", "--number", "--json"]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["predict", *args]) == 0
    print(json.dumps(json.loads(out.getvalue())[0]))
for args in (["{trained_run}", "{tmp_path}/one.png", "--show", "{tmp_path}/show.png"],
             ["{trained_run}", "{tmp_path}/row.png", "--number", "--show", "{tmp_path}/n.png"]):
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["predict", *args]) == 0
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "matplotlib"))))
"""
    proc = _python(code, trained_run.parent)
    assert proc.returncode == 0, proc.stderr
    run_answer, file_answer, number, heavy = (json.loads(line) for line in proc.stdout.splitlines())
    assert run_answer["label"] == file_answer["label"] == labels[0]
    assert number["number"] == labels
    assert heavy == []  # neither torch nor matplotlib was imported
    for name in ("show.png", "n.png"):  # the pictures --show draws, with Pillow alone
        with Image.open(tmp_path / name) as shown:
            assert shown.format == "PNG" and shown.width > 100 and shown.height > 100


def test_serve_answers_from_the_onnx_file_without_loading_torch(trained_run, mnist_dir, mnist):
    digits = mnist.test[0][:3, 0].numpy()
    labels = "".join(str(int(v)) for v in mnist.test[1][:3])
    server = Server(trained_run, mnist_dir)
    try:
        status, ready = server.get("/readyz")
        assert status == 200 and ready["backend"] == "onnxruntime"
        answers = []
        for path, body in (
            ("/api/predict", png(digits[0])),
            ("/api/read", row_png(list(digits))),
        ):
            req = urllib.request.Request(
                server.url(path), data=body, headers={"Content-Type": "image/png"}
            )
            with urllib.request.urlopen(req, timeout=30) as r:
                answers.append(json.load(r))
        maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    finally:
        server.stop()
    assert answers[0]["label"] == labels[0]
    assert answers[1]["number"] == labels
    assert "libtorch" not in maps  # torch's shared library never loaded into the server
    assert "onnxruntime" in maps  # while the model ran in ONNX Runtime


def test_a_tampered_onnx_file_is_refused_until_exported_again(run_copy, mnist, tmp_path):
    (tmp_path / "one.png").write_bytes(png(mnist.test[0][0, 0].numpy()))
    onnx = run_copy / "best.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")  # changed after training: stale or tampered
    cmd = [sys.executable, "-m", "mnistlab", "predict", str(run_copy), str(tmp_path / "one.png")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "best.onnx: does not match best.json (hash differs)" in line
    assert f"mnistlab export {run_copy} --out {onnx}" in line
    fix = [sys.executable, "-m", "mnistlab", "export", str(run_copy), "--out", str(onnx)]
    assert subprocess.run(fix, capture_output=True, timeout=300).returncode == 0
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{tmp_path / 'one.png'}: {int(mnist.test[1][0])} (")


def test_tampered_weights_are_refused_on_the_onnx_path_too(run_copy, tmp_path):
    weights = run_copy / "best.safetensors"
    saved = weights.read_bytes()
    try:
        weights.write_bytes(saved[:-1] + bytes([saved[-1] ^ 1]))
        with pytest.raises(Exception, match="does not match its JSON"):
            load_predictor(run_copy)
    finally:
        weights.write_bytes(saved)
