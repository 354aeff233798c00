"""FastAPI app: ``/`` (the drawing page), ``POST /api/predict``, ``GET /api/model``,
``GET /healthz`` and the OpenAPI docs at ``/docs``.

The model is loaded once; inference runs in a worker thread, off the event loop.
Uploads are read into memory only (multipart is parsed here, not spooled to a
temp file), so the server never writes to disk. Limits: a request body of at most
2 MB and an image of at most 4096 x 4096 pixels.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
from email import policy
from email.parser import BytesParser
from importlib.resources import files
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool

from ...errors import MnistlabError
from ..preprocess import open_image, to_mnist

__all__ = ["MAX_BODY", "MAX_SIDE", "create_app"]

MAX_BODY = 2 * 1024 * 1024
MAX_SIDE = 4096
_JSON_EXPECTED = 'expected JSON {"image": "data:image/png;base64,..."}'


# What the client gets for each kind of error (``MnistlabError.kind``); any other
# MnistlabError is a request the server cannot use: 422.
STATUS = {"too_large": 413, "unsupported_type": 415}


def _status(e: MnistlabError) -> int:
    return STATUS.get(e.kind or "", 422)


class ApiError(MnistlabError):
    """A request the API refuses; ``kind`` picks the status code (``STATUS``)."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes MAX_BODY (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(f"request body over {MAX_BODY // (1024 * 1024)} MB", kind="too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(f"request body over {MAX_BODY // (1024 * 1024)} MB", kind="too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _image_bytes(content_type: str, body: bytes) -> bytes:
    """The image inside a multipart upload, a JSON data URL or a raw image body."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        msg = BytesParser(policy=policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
        )
        if not msg.is_multipart():
            raise ApiError("malformed multipart body")
        for part in msg.iter_parts():
            if part.get_param("name", header="content-disposition") in ("file", "image"):
                return part.get_payload(decode=True) or b""
        raise ApiError("multipart upload has no 'file' (or 'image') field")
    if kind == "application/json":
        try:
            data = json.loads(body)
            url = data.get("image") if isinstance(data, dict) else None
            if not isinstance(url, str):
                raise ValueError
            header, _, payload = url.partition(",")
            if not header.startswith("data:image/") or ";base64" not in header:
                raise ValueError
            return base64.b64decode(payload, validate=True)
        except (ValueError, binascii.Error, RecursionError):
            raise ApiError(_JSON_EXPECTED) from None
    if kind.startswith("image/"):
        return body
    raise ApiError(
        f"unsupported content type {kind or 'none'!r}; send multipart, JSON or an image",
        kind="unsupported_type",
    )


def _png_data_url(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def create_app(run: str | os.PathLike, device: str = "cpu") -> FastAPI:
    """The app for the model in ``run`` (a run folder, checkpoint or .onnx file)."""
    from ..predict import load_predictor

    predictor = load_predictor(run, device)
    info = _model_info(Path(run), predictor)
    page = files("mnistlab.serve.web").joinpath("static/index.html").read_text(encoding="utf-8")
    app = FastAPI(
        title="mnistlab",
        version=info["mnistlab_version"],
        description="Handwritten-digit recognition. POST an image, get the digit back.",
    )

    @app.exception_handler(MnistlabError)
    async def api_error(request: Request, exc: MnistlabError) -> JSONResponse:
        return _error(_status(exc), str(exc))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/api/model")
    async def model_info() -> dict:
        """The model's name, size, accuracy, classes and normalisation."""
        return info

    @app.post(
        "/api/predict",
        openapi_extra={
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
                                "image": {
                                    "type": "string",
                                    "example": "data:image/png;base64,iVBORw0...",
                                }
                            },
                        }
                    },
                }
            }
        },
    )
    async def predict(request: Request, input28: bool = True) -> dict:
        """Classify one image (multipart field ``file``, or JSON ``{"image": data URL}``).

        Returns the label, its confidence, all class probabilities and, unless
        ``input28=false``, the 28x28 image the model saw as a PNG data URL.
        Errors: 413 too large, 415 wrong type, 422 undecodable or blank.
        """
        body = await _read_body(request)
        data = _image_bytes(request.headers.get("content-type", ""), body)
        digit, probs = await run_in_threadpool(_classify, predictor, data)
        order = np.argsort(-probs)
        out = {
            "label": predictor.class_names[order[0]],
            "confidence": float(probs[order[0]]),
            "probabilities": [float(p) for p in probs],
            "classes": predictor.class_names,
        }
        if input28:
            out["input28"] = _png_data_url(digit)
        return out

    @app.post("/api/read", summary="Read a whole number (a row of digits)")
    async def read(request: Request) -> dict:
        """Read a row of digits: the same inputs as ``/api/predict``. Returns
        ``{"number": "90210", "confidence", "digits": [{"label", "confidence", "box"}]}``
        (the number a string, so leading zeros survive; boxes as x0, y0, x1, y1 in the
        image's pixels). Errors: 413 too large, 415 wrong type, 422 undecodable, blank or
        more than 32 digits."""
        body = await _read_body(request)
        data = _image_bytes(request.headers.get("content-type", ""), body)
        return (await run_in_threadpool(_read_number, predictor, data)).to_json()

    return app


def _read_number(predictor, data: bytes):
    from ..numbers import read_number

    return read_number(predictor, _opened(data), "image")


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


def _model_info(run: Path, predictor) -> dict:
    from ..._version import __version__

    info = {
        "name": predictor.name,
        "classes": predictor.class_names,
        "mean": predictor.mean,
        "std": predictor.std,
        "parameters": None,
        "test_accuracy": None,
        "mnistlab_version": __version__,
    }
    if run.suffix != ".onnx":
        from ...runs.checkpoint import read_checkpoint_json

        doc, _ = read_checkpoint_json(run)
        info["test_accuracy"] = doc.get("metrics", {}).get("test_acc")
        info["source"] = doc["model"].get("source", "")
        info["parameters"] = predictor.params
    return info
