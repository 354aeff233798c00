"""Every error the API gives is ``{"error": "..."}``: FastAPI's own 404, 405 and query
validation included; and a broken model (NaN weights, in a real exported ONNX file) is a
clear 500 and a 503 from ``/readyz``, never a NaN in a JSON answer."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from mnistlab.serve.web import create_app
from tests.support.processes import cli_env

pytestmark = pytest.mark.slow  # needs the trained cnn


@pytest.fixture(scope="module")
def seven(mnist) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(255 - mnist.test[0][0, 0].numpy()).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(trained_run):
    return TestClient(create_app(trained_run))


def _one_error(r) -> str:
    """The answer's error message, after checking it is the API's one shape."""
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert "\n" not in body["error"] and body["error"]
    return body["error"]


@pytest.mark.parametrize(
    "method,path,status,needle",
    [
        ("GET", "/nonexistent", 404, "no such path /nonexistent"),
        ("POST", "/api/nope", 404, "/docs"),
        ("POST", "/healthz", 405, "use GET"),
        ("GET", "/api/predict", 405, "use POST"),
        ("DELETE", "/api/read", 405, "DELETE is not allowed on /api/read"),
    ],
)
def test_unknown_paths_and_methods(client, method, path, status, needle):
    r = client.request(method, path)
    assert r.status_code == status
    assert needle in _one_error(r)


def test_an_invalid_query_parameter_is_422_naming_it(client, seven):
    r = client.post(
        "/api/predict?input28=notabool", content=seven, headers={"Content-Type": "image/png"}
    )
    assert r.status_code == 422
    assert "input28" in _one_error(r) and "boolean" in _one_error(r)


@pytest.mark.parametrize(
    "kwargs,status",
    [
        ({"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415),
        ({"content": b"\0" * (2 * 1024 * 1024 + 1), "headers": {"Content-Type": "image/png"}}, 413),
        ({"content": b"not an image", "headers": {"Content-Type": "image/png"}}, 422),
    ],
)
def test_the_api_refusals_keep_their_shape(client, kwargs, status):
    for path in ("/api/predict", "/api/read"):
        r = client.post(path, **kwargs)
        assert r.status_code == status
        _one_error(r)


@pytest.fixture(scope="module")
def nan_onnx(trained_run, tmp_path_factory):
    """The trained cnn exported to ONNX with one weight made NaN: a real broken model."""
    from mnistlab.runs.checkpoint import load_checkpoint
    from mnistlab.serve.export import export_onnx

    model, _ = load_checkpoint(trained_run)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = math.nan
    return export_onnx(model, tmp_path_factory.mktemp("broken") / "nan.onnx")


def test_a_model_giving_nan_is_a_clear_500_not_a_nan_in_json(nan_onnx, seven):
    client = TestClient(create_app(nan_onnx))
    assert client.get("/readyz").status_code == 503
    for path in ("/api/predict", "/api/read"):
        r = client.post(path, content=seven, headers={"Content-Type": "image/png"})
        assert r.status_code == 500
        assert "NaN or infinite" in _one_error(r)
        json.loads(r.text)  # strict JSON: no NaN anywhere


def test_predict_with_a_model_giving_nan_fails_in_one_line(nan_onnx, seven, tmp_path, mnist_dir):
    img = tmp_path / "seven.png"
    img.write_bytes(seven)
    proc = subprocess.run(
        [sys.executable, "-m", "mnistlab", "predict", str(nan_onnx), str(img)],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(mnist_dir),
    )
    assert proc.returncode == 1 and "nan%" not in proc.stdout.lower()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "NaN or infinite" in lines[0], proc.stderr
