"""Fuzz the web app in-process: POST each input to ``/api/predict`` and ``/api/read``.

    python fuzz/fuzz_app.py -max_total_time=60      # libFuzzer flags; see docs/reliability.md

The glue around the two other harnesses' targets: reading the body, the headers,
``image_bytes``, the size checks, ``open_image``, ``to_mnist``, ``read_number``, the
model and the JSON answer, through the real FastAPI app called as ASGI (no socket: a
few ms a request instead of tens). Inputs are split as the body harness splits them
(the content type, a newline, the body); the first line may carry more headers after
CRs (``image/png<CR>content-length: 5``), so the declared length is fuzzed too. The
model is an untrained ``linear`` network saved to a temporary folder: its answers are
nonsense, which does not matter here, and the harness needs no training run and no
MNIST. Every answer must be one of the statuses the API documents (200, 408, 413, 415,
422); an exception escaping the app is a crash (Starlette has answered 500 by then).
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
from pathlib import Path

import torch
from _harness import instrumented, main

with instrumented(__name__, "mnistlab", "python_multipart"):
    from mnistlab import create_model, save_checkpoint
    from mnistlab.serve.web import create_app

STATUSES = {200, 408, 413, 415, 422}
ROUTES = ("/api/predict", "/api/read")
_app = None
_loop = asyncio.new_event_loop()


def app():
    """The app, made on first use (loading torch and exporting to ONNX takes seconds)."""
    global _app
    if _app is None:
        torch.manual_seed(0)
        # the app holds the model in memory once made: the files can go at once
        with tempfile.TemporaryDirectory(prefix="fuzz-app-") as folder:
            stem = Path(folder) / "best"
            _app = create_app(save_checkpoint(stem, create_model("linear")))
    return _app


def request(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """(headers, body) of a fuzz input: the body harness's split, and the first line
    may hold more headers after CRs (which no header value holds), ``name: value``
    each. Without a Content-Length among them the body's true length is sent."""
    head, _, body = data.partition(b"\n")
    content_type, *more = head.split(b"\r")
    headers = [(b"content-type", content_type)]
    for line in more:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    if all(name != b"content-length" for name, _ in headers):
        headers.append((b"content-length", b"%d" % len(body)))
    return headers, body


async def _post(path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    answer: dict = {"status": None, "body": b""}

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app()(scope, receive, send)
    return answer["status"], answer["body"]


def check(data: bytes) -> None:
    """POST ``data`` to both routes; each must answer a documented status with JSON."""
    headers, body = request(data)
    for path in ROUTES:
        status, answer = _loop.run_until_complete(_post(path, headers, body))
        assert status in STATUSES, (path, status, answer[:200])
        doc = json.loads(answer)
        assert ("error" in doc) == (status != 200), (path, status, doc)


def seeds() -> list[bytes]:
    """The image harness's digits (PNG, JPEG, WebP, GIF: what browsers upload) sent the
    three ways the API accepts, and the body harness's requests."""
    import fuzz_body
    import fuzz_image

    magic = (b"\x89PNG", b"\xff\xd8", b"RIFF", b"GIF8")
    images = [s for s in fuzz_image.seeds() if s.startswith(magic)]
    out = list(fuzz_body.seeds())
    for img in images:
        out.append(b"image/png\n" + img)
        url = "data:image/png;base64," + base64.b64encode(img).decode()
        out.append(b"application/json\n" + json.dumps({"image": url}).encode())
        part = b'Content-Disposition: form-data; name="file"; filename="d"\r\n\r\n'
        out.append(b"multipart/form-data; boundary=B\n--B\r\n" + part + img + b"\r\n--B--\r\n")
    # the declared length: short, over the 2 MB limit, absent (a chunked upload)
    out.append(b"image/png\rcontent-length: 5\n" + images[0])
    out.append(b"image/png\rContent-Length: 3000000\n" + images[0])
    out.append(b"image/png\rcontent-length:\rtransfer-encoding: chunked\n" + images[0])
    return out


if __name__ == "__main__":
    app()  # before fuzzing: libFuzzer's first input must not pay for loading the model
    main("app", check, seeds)
