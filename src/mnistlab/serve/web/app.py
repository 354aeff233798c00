"""FastAPI app: ``/`` (the drawing page), ``POST /api/predict``, ``POST /api/read``,
``GET /api/model``, ``GET /healthz`` (alive), ``GET /readyz`` (the model answers) and
the OpenAPI docs at ``/docs``.

The model is loaded once per worker, as ONNX Runtime when it is installed (a tenth of
torch's cost for one image). Small uploads are classified on the event loop: at about
2 ms of CPU each, a thread hop would cost more than it saves; big ones go to a thread,
so one huge image does not stall the worker's other requests. Uploads are read into
memory only, so the server never writes to disk. Limits: a body of at most 2 MB, which
must arrive within ``timeout`` seconds, and an image of at most 4096 x 4096 pixels.
"""

from __future__ import annotations

import io
import os
from importlib.resources import files
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool

from ...errors import MnistlabError
from ..preprocess import open_image, to_mnist
from .body import ApiError, image_bytes, read_body

__all__ = ["INLINE_MAX", "MAX_BODY", "MAX_SIDE", "STATUS", "create_app"]

MAX_BODY = 2 * 1024 * 1024
MAX_SIDE = 4096
INLINE_MAX = 64 * 1024  # bodies up to this size are classified on the event loop

# What the client gets for each kind of error (``MnistlabError.kind``); any other
# MnistlabError is a request the server cannot use: 422.
STATUS = {"too_large": 413, "unsupported_type": 415, "timeout": 408}

_PREDICT_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "example": "data:image/png;base64,iVBORw0..."}
                    },
                }
            },
        }
    }
}


def _status(e: MnistlabError) -> int:
    return STATUS.get(e.kind or "", 422)


def create_app(
    run: str | os.PathLike,
    device: str = "cpu",
    *,
    backend: str = "auto",
    threads: int | None = None,
    timeout: float = 30.0,
) -> FastAPI:
    """The app for the model in ``run`` (a run folder, checkpoint or .onnx file).
    ``backend``: auto (ONNX Runtime on the CPU when installed), torch or onnx;
    ``threads``: the model's CPU threads; ``timeout``: seconds a body may take."""
    from ..predict import load_predictor

    predictor = load_predictor(run, device, backend=backend, threads=threads)
    info = _model_info(Path(run), predictor)
    page = files("mnistlab.serve.web").joinpath("static/index.html").read_text(encoding="utf-8")
    blank = np.zeros((1, 28, 28), np.uint8)
    app = FastAPI(
        title="mnistlab",
        version=info["mnistlab_version"],
        description="Handwritten-digit recognition. POST an image, get the digit back.",
    )

    @app.exception_handler(MnistlabError)
    async def api_error(request: Request, exc: MnistlabError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=_status(exc))

    async def upload(request: Request) -> bytes:
        body = await read_body(request, MAX_BODY, timeout)
        return image_bytes(request.headers.get("content-type", ""), body)

    async def work(fn, data: bytes):
        """``fn(predictor, data)``, on the event loop when ``data`` is small."""
        if len(data) <= INLINE_MAX:
            return fn(predictor, data)
        return await run_in_threadpool(fn, predictor, data)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: the model classifies a blank digit to finite probabilities."""
        try:
            ok = bool(np.isfinite(predictor.probs(blank)).all())
        except Exception:  # a broken backend is "not ready", not a crash
            ok = False
        status = {"status": "ready" if ok else "not ready", "model": predictor.name}
        return JSONResponse(status | {"backend": predictor.backend}, status_code=200 if ok else 503)

    @app.get("/api/model")
    async def model_info() -> dict:
        """The model's name, size, accuracy, classes and normalisation."""
        return info

    @app.post("/api/predict", openapi_extra=_PREDICT_BODY)
    async def predict(request: Request, input28: bool = True) -> JSONResponse:
        """Classify one image (multipart field ``file``, or JSON ``{"image": data URL}``).

        Returns the label, its confidence, all class probabilities and, unless
        ``input28=false``, the 28x28 image the model saw as a PNG data URL.
        Errors: 408 body too slow, 413 too large, 415 wrong type, 422 undecodable or blank.
        """
        digit, probs = await work(_classify, await upload(request))
        best = int(np.argmax(probs))
        out = {
            "label": predictor.class_names[best],
            "confidence": float(probs[best]),
            "probabilities": probs.tolist(),
            "classes": predictor.class_names,
        }
        if input28:
            out["input28"] = _png_data_url(digit)
        return JSONResponse(out)

    @app.post("/api/read", summary="Read a whole number (a row of digits)")
    async def read(request: Request) -> JSONResponse:
        """Read a row of digits: the same inputs as ``/api/predict``. Returns
        ``{"number": "90210", "confidence", "digits": [{"label", "confidence", "box"}]}``
        (the number a string, so leading zeros survive; boxes as x0, y0, x1, y1 in the
        image's pixels). Errors: 408, 413, 415 as for ``/api/predict``; 422 undecodable,
        blank or more than 32 digits."""
        return JSONResponse((await work(_read_number, await upload(request))).to_json())

    return app


def _opened(data: bytes) -> Image.Image:
    if not data:
        raise ApiError("empty image")
    img = open_image(data, "image")
    if max(img.size) > MAX_SIDE:
        raise ApiError(
            f"image is {img.size[0]}x{img.size[1]}; at most {MAX_SIDE}x{MAX_SIDE}",
            kind="too_large",
        )
    return img


def _classify(predictor, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The digit in ``data`` and its probabilities; a ``MnistlabError`` (with its kind)
    for an image that cannot be used."""
    digit = to_mnist(_opened(data), "image")
    return digit, predictor.probs(digit[None])[0]


def _read_number(predictor, data: bytes):
    from ..numbers import read_number

    return read_number(predictor, _opened(data), "image")


def _png_data_url(pixels: np.ndarray) -> str:
    import base64

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _model_info(run: Path, predictor) -> dict:
    from ..._version import __version__

    info = {
        "name": predictor.name,
        "classes": predictor.class_names,
        "mean": predictor.mean,
        "std": predictor.std,
        "parameters": None,
        "test_accuracy": None,
        "backend": predictor.backend,
        "mnistlab_version": __version__,
    }
    if run.suffix != ".onnx":
        from ...runs.checkpoint import read_checkpoint_json

        doc, _ = read_checkpoint_json(run)
        info["test_accuracy"] = doc.get("metrics", {}).get("test_acc")
        info["source"] = doc["model"].get("source", "")
        info["parameters"] = predictor.params
    return info
