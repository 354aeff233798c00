"""FastAPI app: ``/`` (the drawing page), ``POST /api/predict``, ``POST /api/read``,
``GET /api/model``, ``GET /healthz`` (alive), ``GET /readyz`` (the model answers) and
the OpenAPI docs at ``/docs``. An image the model scores below its reject threshold
is answered "not a digit" (``not_digit``, a 200 like any answer; models/_reject.py).

The model is loaded once per worker, as ONNX Runtime when it is installed (a tenth of
torch's cost for one image). The event loop only waits: everything a request costs in
CPU (parsing its JSON or multipart body, decoding the image, preprocessing, the model,
the answer's PNG) runs on one of ``WORK_THREADS`` threads, whatever the body's size, so
that no upload, however crafted, holds up ``/healthz`` or the other connections (a 1 kB
PNG can decode to 4096 x 160 pixels of 2,048 "digits"; a 2 MB JSON body takes 30 ms to
parse). A flood queues for those threads rather than piling up new ones. Uploads are
read into memory only, so the server never writes to disk. Limits: a body of at most
2 MB, which must arrive within ``timeout`` seconds, and an image of at most 4096 x 4096
pixels. Every error is a JSON ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import io
import os
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from starlette.exceptions import HTTPException

from ...errors import MnistlabError
from ..preprocess import open_image, to_mnist
from .body import ApiError, image_bytes, read_body

__all__ = ["MAX_BODY", "MAX_SIDE", "STATUS", "WORK_THREADS", "create_app"]

MAX_BODY = 2 * 1024 * 1024
MAX_SIDE = 4096
# Threads per worker for the requests' CPU work: Pillow, numpy and ONNX Runtime release
# the GIL, so two keep a core busy while one waits for it; more would only queue on it
WORK_THREADS = 2
# seconds of CPU that reading one number may take: a real row of 32 digits takes a few
# tenths; an image made to make the segmentation cut and cut is refused (422) at this
READ_CPU_S = 1.0

# What the client gets for each kind of error (``MnistlabError.kind``); any other
# MnistlabError is a request the server cannot use: 422. "model_failure" is the
# server's fault (a model that gives NaN): 500, with a message, never a NaN in JSON.
STATUS = {"too_large": 413, "unsupported_type": 415, "timeout": 408, "model_failure": 500}
# Errors answered before the body was read: the connection is closed after them, or
# the unread rest of the body would be taken for the next request
UNREAD_BODY = {"too_large", "timeout"}

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
    accept_all: bool = False,
) -> FastAPI:
    """The app for the model in ``run`` (a run folder, checkpoint or .onnx file).
    ``backend``: auto (ONNX Runtime on the CPU when installed), torch or onnx;
    ``threads``: the model's CPU threads; ``timeout``: seconds a body may take;
    ``accept_all``: never answer "not a digit", whatever the model's reject threshold."""
    from ..predict import load_predictor

    predictor = load_predictor(run, device, backend=backend, threads=threads)
    if accept_all:
        predictor.reject_threshold = None
    info = _model_info(Path(run), predictor)
    page = files("mnistlab.serve.web").joinpath("static/index.html").read_text(encoding="utf-8")
    blank = np.zeros((1, 28, 28), np.uint8)
    app = FastAPI(
        title="mnistlab",
        version=info["mnistlab_version"],
        description="Handwritten-digit recognition. POST an image, get the digit back.",
    )

    pool = ThreadPoolExecutor(WORK_THREADS, thread_name_prefix="mnistlab-work")
    _error_handlers(app)

    async def work(fn, request: Request, *args) -> JSONResponse:
        """The body, read within the deadline, then ``fn(predictor, content_type, body,
        *args)`` on the pool: the answer's JSON."""
        body = await read_body(request, MAX_BODY, timeout)
        ctype = request.headers.get("content-type", "")
        loop = asyncio.get_running_loop()
        return JSONResponse(await loop.run_in_executor(pool, fn, predictor, ctype, body, *args))

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
    async def predict(
        request: Request, input28: bool = True, accept_all: bool = False
    ) -> JSONResponse:
        """Classify one image (multipart field ``file``, or JSON ``{"image": data URL}``).

        Returns ``label`` and its ``confidence``, ``digit_score`` (0 to 1, higher =
        more digit-like), ``not_digit``, ``best_guess`` (the top class), ``top3``, all
        class ``probabilities`` and, unless ``input28=false``, the 28x28 image the model
        saw as a PNG data URL. An image scored below the model's reject threshold is
        ``"not_digit": true`` with ``label`` and ``confidence`` null (still a 200);
        ``accept_all=true`` always answers a digit.
        Errors: 408 body too slow, 413 too large, 415 wrong type, 422 undecodable or blank.
        """
        return await work(_predict_json, request, input28, accept_all)

    @app.post("/api/read", summary="Read a whole number (a row of digits)")
    async def read(request: Request) -> JSONResponse:
        """Read a row of digits: the same inputs as ``/api/predict``. Returns
        ``{"number": "90210", "confidence", "digits": [{"label", "confidence", "box"}]}``
        (the number a string, so leading zeros survive; boxes as x0, y0, x1, y1 in the
        image's pixels), with ``text`` (the number as read, separators included),
        ``separators``, ``skipped`` and ``problem`` where the number reader gives them.
        Errors: 408, 413, 415 as for ``/api/predict``; 422 undecodable, blank or more
        than 32 digits."""
        return await work(_read_json, request)

    return app


def _error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": "..."}``: FastAPI's own 404, 405 and 422 too (they
    would be ``{"detail": ...}``). A refusal sent before the body was read closes the
    connection (``UNREAD_BODY``)."""

    @app.exception_handler(MnistlabError)
    async def api_error(request: Request, exc: MnistlabError) -> JSONResponse:
        close = {"connection": "close"} if exc.kind in UNREAD_BODY else None
        return JSONResponse({"error": str(exc)}, status_code=_status(exc), headers=close)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        path = request.url.path
        if exc.status_code == 404:
            why = f"no such path {path}; the API is listed at /docs"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "another method")
            why = f"{request.method} is not allowed on {path}; use {allowed}"
        else:
            why = str(exc.detail)
        return JSONResponse({"error": why}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = " ".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, 422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        # a bug: its traceback goes to the server's log, the client gets one line
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, 500)


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


def _predict_json(
    predictor, content_type: str, body: bytes, input28: bool, accept_all: bool = False
) -> dict:
    """``/api/predict``'s answer for ``body``; a ``MnistlabError`` (with its kind) for
    a body or image that cannot be used. Runs on the pool, never on the event loop."""
    digit = to_mnist(_opened(image_bytes(content_type, body)), "image")
    probs, scores, ok = predictor.judge(digit[None])  # finite, or a model_failure error
    probs, names = probs[0], predictor.class_names  # (C,)
    is_digit = accept_all or bool(ok[0])
    order = np.argsort(-probs)[:3]
    best = names[order[0]]
    out = {
        "label": best if is_digit else None,
        "confidence": float(probs[order[0]]) if is_digit else None,
        "not_digit": not is_digit,
        "digit_score": float(scores[0]),
        "best_guess": best,
        "top3": [{"label": names[i], "probability": float(probs[i])} for i in order],
        "probabilities": probs.tolist(),
        "classes": names,
    }
    if input28:
        out["input28"] = _png_data_url(digit)
    return out


def _read_json(predictor, content_type: str, body: bytes) -> dict:
    """``/api/read``'s answer for ``body``, as ``_predict_json``."""
    from ..numbers import read_number

    img = _opened(image_bytes(content_type, body))
    return read_number(predictor, img, "image", cpu_budget=READ_CPU_S).to_json()


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
        # digit scores below it are "not a digit"; None: every image is answered a digit
        "reject_threshold": predictor.reject_threshold,
        "mnistlab_version": __version__,
    }
    if run.suffix != ".onnx":
        from ...runs.manifest import read_checkpoint_json

        doc, _ = read_checkpoint_json(run)
        info["test_accuracy"] = doc.get("metrics", {}).get("test_acc")
        info["source"] = doc["model"].get("source", "")
        info["parameters"] = predictor.params
    return info
