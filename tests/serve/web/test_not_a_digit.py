"""The reject option over HTTP: ``/api/predict`` answers "not a digit" as a 200 with the
same fields as ``predict --json``; ``accept_all`` (per request, or for the whole app)
answers a digit; ``/api/model`` gives the threshold. Expectations come from the
model's own probabilities."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mnistlab.serve.predict import load_predictor
from mnistlab.serve.preprocess import load_digit
from mnistlab.serve.web import create_app
from tests.support.rejecting import between, scribble, with_threshold

pytestmark = pytest.mark.slow  # every test here needs the trained cnn


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def pictures(mnist) -> dict[str, bytes]:
    """The first MNIST test digit (a 7) and a scribble, as black-on-white PNGs."""
    seven = Image.fromarray(255 - mnist.test[0][0, 0].numpy()).resize((140, 140), Image.BICUBIC)
    return {"seven": _png(seven), "scribble": _png(scribble())}


@pytest.fixture(scope="module")
def truth(trained_run, pictures) -> dict[str, np.ndarray]:
    """{name: probabilities (C,)}, from the model through the shared preprocessing."""
    predictor = load_predictor(trained_run)
    return {k: predictor.probs(load_digit(v, k)[None])[0] for k, v in pictures.items()}


@pytest.fixture(scope="module")
def gated(trained_run, truth, tmp_path_factory):
    """(run, threshold) between the scribble's score and the seven's."""
    low, high = truth["scribble"].max(), truth["seven"].max()
    assert low < high, f"the scribble scores {low:.4f}, the seven {high:.4f}"
    t = between(low, high)
    return with_threshold(trained_run, tmp_path_factory.mktemp("gated-api") / "run", t), t


@pytest.fixture(scope="module")
def open_run(trained_run, tmp_path_factory):
    """The run with no reject threshold, as before calibration fitted one."""
    return with_threshold(trained_run, tmp_path_factory.mktemp("open-api") / "run", None)


@pytest.fixture(scope="module")
def client(gated):
    return TestClient(create_app(gated[0], backend="torch"))


def _post(client, png: bytes, **params):
    r = client.post("/api/predict", params=params, files={"file": ("x.png", png, "image/png")})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_scribble_is_not_a_digit_with_its_scores_and_bars(client, pictures, truth):
    body = _post(client, pictures["scribble"])
    p = truth["scribble"]
    assert body["not_digit"] is True and body["label"] is None and body["confidence"] is None
    assert body["digit_score"] == pytest.approx(p.max(), abs=1e-5)
    assert body["best_guess"] == str(p.argmax())
    assert body["probabilities"] == pytest.approx(p.tolist(), abs=1e-5)
    assert [t["label"] for t in body["top3"]] == [str(i) for i in np.argsort(-p)[:3]]
    assert body["input28"].startswith("data:image/png;base64,")


def test_a_digit_carries_its_digit_score_too(client, pictures, truth):
    body = _post(client, pictures["seven"], input28="false")
    assert body["not_digit"] is False and body["label"] == body["best_guess"] == "7"
    assert body["digit_score"] == pytest.approx(truth["seven"].max(), abs=1e-5)
    assert body["confidence"] == body["top3"][0]["probability"]
    assert "input28" not in body


def test_accept_all_per_request_answers_a_digit(client, pictures, truth):
    body = _post(client, pictures["scribble"], accept_all="true")
    assert body["not_digit"] is False and body["label"] == str(truth["scribble"].argmax())
    assert body["digit_score"] == pytest.approx(truth["scribble"].max(), abs=1e-5)


def test_an_app_that_accepts_all_never_rejects(gated, pictures):
    body = _post(TestClient(create_app(gated[0], accept_all=True)), pictures["scribble"])
    assert body["not_digit"] is False and body["label"] == body["best_guess"]


def test_the_threshold_is_in_the_model_info(client, gated, open_run):
    assert client.get("/api/model").json()["reject_threshold"] == gated[1]
    assert TestClient(create_app(open_run)).get("/api/model").json()["reject_threshold"] is None


def test_no_threshold_answers_the_scribble_as_a_digit(open_run, pictures, truth):
    body = _post(TestClient(create_app(open_run)), pictures["scribble"])
    assert body["not_digit"] is False and body["label"] == str(truth["scribble"].argmax())


def test_the_onnx_backend_rejects_the_same(gated, pictures, truth):
    body = _post(TestClient(create_app(gated[0], backend="onnx")), pictures["scribble"])
    assert body["not_digit"] is True and body["best_guess"] == str(truth["scribble"].argmax())
