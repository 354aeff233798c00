"""The JSON API with FastAPI's test client: every input path and every error."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mnistlab.errors import MnistlabError
from mnistlab.serve.preprocess import PreprocessError
from mnistlab.serve.web import create_app
from mnistlab.serve.web.app import MAX_BODY
from tests.support.images import thin_png

pytestmark = pytest.mark.slow  # every test here needs the trained cnn


@pytest.fixture(scope="module")
def client(trained_run):
    return TestClient(create_app(trained_run))


@pytest.fixture(scope="module")
def seven(mnist) -> bytes:
    """The first MNIST test digit (a 7) as a black-on-white 140x140 PNG."""
    a = 255 - mnist.test[0][0, 0].numpy()
    buf = io.BytesIO()
    Image.fromarray(a).resize((140, 140), Image.BICUBIC).save(buf, "PNG")
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_health_model_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/api/model").json()
    assert info["name"] == "cnn" and info["parameters"] == 21_840
    assert info["classes"] == [str(i) for i in range(10)] and 0.95 < info["test_accuracy"] <= 1
    assert client.get("/docs").status_code == 200
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline


def test_multipart_upload(client, seven):
    r = client.post("/api/predict", files={"file": ("seven.png", seven, "image/png")})
    assert r.status_code == 200
    body = r.json()
    assert body["label"] == "7" and body["confidence"] > 0.5
    assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1)
    assert body["confidence"] == max(body["probabilities"])
    # a clean MNIST 7 is a digit under any fitted threshold; its digit score comes too
    assert body["not_digit"] is False and body["best_guess"] == "7"
    assert body["digit_score"] == body["confidence"]
    head, _, data = body["input28"].partition(",")
    assert head == "data:image/png;base64"
    digit = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
    assert digit.shape == (28, 28) and digit.max() > 200  # white ink on black, like MNIST


def test_json_data_url(client, seven):
    url = "data:image/png;base64," + base64.b64encode(seven).decode()
    r = client.post("/api/predict?input28=false", json={"image": url})
    assert r.status_code == 200 and r.json()["label"] == "7" and "input28" not in r.json()


def test_raw_image_body(client, seven):
    r = client.post("/api/predict", content=seven, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.json()["label"] == "7"


@pytest.mark.parametrize(
    "kwargs,status,needle",
    [
        ({"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported"),
        ({"content": b"{}", "headers": {}}, 415, "unsupported"),
        ({"json": {"image": "not a data url"}}, 422, "expected JSON"),
        ({"json": {"picture": "x"}}, 422, "expected JSON"),
        ({"json": {"image": "data:image/png;base64,!!!"}}, 422, "expected JSON"),
        ({"files": {"file": ("x.png", b"not an image", "image/png")}}, 422, "not an image"),
        ({"files": {"other": ("x.png", b"abc", "image/png")}}, 422, "no 'file'"),
        ({"files": {"file": ("b.png", b"", "image/png")}}, 422, "empty image"),
    ],
)
def test_bad_requests(client, kwargs, status, needle):
    r = client.post("/api/predict", **kwargs)
    assert r.status_code == status
    assert needle in r.json()["error"]


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG signature and a valid IHDR claiming ``width x height``, a tiny IDAT, no pixels
    worth the name: what a decompression bomb's first bytes look like."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@pytest.mark.parametrize(
    "make,status,needle",
    [
        (lambda seven: _png_declaring(60000, 60000), 413, "too many pixels"),
        (lambda seven: seven[: len(seven) // 2], 422, "truncated"),
        (lambda seven: np.random.default_rng(0).bytes(5000), 422, "not an image"),
        (lambda seven: b"", 422, "empty image"),
    ],
)
def test_hostile_images_get_their_4xx(client, seven, make, status, needle):
    data = make(seven)
    for kwargs in (
        {"files": {"file": ("x.png", data, "image/png")}},
        {"content": data, "headers": {"Content-Type": "image/png"}},
    ):
        r = client.post("/api/predict", **kwargs)
        assert r.status_code == status and needle in r.json()["error"], r.json()


def test_multipart_without_a_boundary_is_422(client, seven):
    r = client.post("/api/predict", content=seven, headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 422 and "boundary" in r.json()["error"]


def test_readiness_and_backend(client):
    assert client.get("/readyz").json() == {
        "status": "ready",
        "model": "cnn",
        "backend": "onnxruntime",
    }
    assert client.get("/api/model").json()["backend"] == "onnxruntime"


def test_blank_image_is_422(client):
    r = client.post("/api/predict", files={"file": ("b.png", _png(Image.new("L", (64, 64), 255)))})
    assert r.status_code == 422 and "no ink" in r.json()["error"]


def test_too_large_body_is_413(client):
    r = client.post("/api/predict", files={"file": ("big.png", b"\0" * (MAX_BODY + 1))})
    assert r.status_code == 413 and "2 MB" in r.json()["error"]


def test_too_many_pixels_is_413(client):
    wide = _png(Image.new("1", (5000, 40), 0))  # small file, too wide
    r = client.post("/api/predict", files={"file": ("wide.png", wide, "image/png")})
    assert r.status_code == 413 and "4096" in r.json()["error"]


def test_nothing_is_written_to_disk(client, seven, monkeypatch):
    import tempfile

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the server tried to write a temporary file")

    # a spooled upload rolls over through tempfile.TemporaryFile; any other write goes
    # through mkstemp or NamedTemporaryFile
    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    big = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (1100, 1100), np.uint8)))
    assert 1024 * 1024 < len(big) < MAX_BODY  # over Starlette's 1 MB spool limit
    r = client.post("/api/predict", files={"file": ("noise.png", big, "image/png")})
    assert r.status_code in (200, 422)
    r = client.post("/api/predict", files={"file": ("seven.png", seven, "image/png")})
    assert r.status_code == 200 and calls == []


@pytest.fixture(scope="module")
def untrained_client(untrained_run):
    from fastapi.testclient import TestClient

    from mnistlab.serve.web import create_app

    return TestClient(create_app(untrained_run), raise_server_exceptions=False)


@pytest.mark.parametrize(
    "body",
    [{"image": 5}, {"image": None}, {"image": ["x"]}, {"image": {"a": 1}}, [1], "s", 5, 1.5],
)
def test_wrong_json_types_are_422(untrained_client, body):
    r = untrained_client.post("/api/predict", json=body)
    assert r.status_code == 422 and "expected JSON" in r.json()["error"]


def test_deeply_nested_json_is_422(untrained_client):
    r = untrained_client.post(
        "/api/predict", content=b"[" * 100_000, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "error" in r.json()


@pytest.mark.parametrize("w,h", [(300, 2), (1000, 3), (10000, 2)])
def test_thin_or_wide_uploads_are_answered(untrained_client, tmp_path, w, h):
    data = thin_png(tmp_path / "t.png", w, h).read_bytes()
    r = untrained_client.post("/api/predict", files={"file": ("t.png", data, "image/png")})
    assert r.status_code in (200, 413, 422), r.text
    assert ("label" in r.json()) == (r.status_code == 200)


def test_status_comes_from_the_error_kind_not_its_words():
    from mnistlab.serve.web.app import _status

    assert _status(MnistlabError("too large, too many pixels")) == 422
    assert _status(MnistlabError("anything", kind="too_large")) == 413
    assert _status(MnistlabError("anything", kind="unsupported_type")) == 415
    assert _status(PreprocessError("x: no ink found", kind="no_ink")) == 422
