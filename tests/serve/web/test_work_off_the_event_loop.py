"""No request's CPU work runs on the server's event loop, whatever the body's size.

A 1 kB PNG can decode to 4096 x 160 pixels of bars, a 2 MB JSON body takes tens of ms
to parse: on the loop, either would hold up ``/healthz`` and every other connection of
the worker. The app is driven in-process on an asyncio loop in this thread (httpx's
ASGI transport, the real app and model); the parsing and decoding functions the app
calls are wrapped to note the thread they run on, and still do their real work. Timing
is left to ``benchmarks/loop_stall.py``."""

from __future__ import annotations

import asyncio
import base64
import io
import threading

import httpx
import numpy as np
import pytest
from PIL import Image

from mnistlab.serve.web import app as web_app

pytestmark = pytest.mark.slow  # needs the trained cnn


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def bodies(mnist) -> dict[str, tuple[str, dict]]:
    """name -> (path, httpx request arguments): each input path, small bodies."""
    seven = _png(255 - mnist.test[0][0, 0].numpy())  # 28x28: a few hundred bytes
    comb = np.full((160, 4096), 255, np.uint8)
    comb[:, ::2] = 0  # 1-px bars at a 2-px pitch: about 1 kB, 2,048 "digits"
    url = "data:image/png;base64," + base64.b64encode(seven).decode()
    return {
        "raw": ("/api/predict", {"content": seven, "headers": {"Content-Type": "image/png"}}),
        "multipart": ("/api/predict", {"files": {"file": ("d.png", seven, "image/png")}}),
        "json": ("/api/read", {"json": {"image": url}}),
        "comb": ("/api/read", {"content": _png(comb), "headers": {"Content-Type": "image/png"}}),
    }


def test_parsing_decoding_and_the_model_run_off_the_event_loop(trained_run, bodies, monkeypatch):
    threads: dict[str, set[int]] = {"image_bytes": set(), "open_image": set()}

    def noting(name: str, fn):
        def wrapped(*args, **kwargs):
            threads[name].add(threading.get_ident())
            return fn(*args, **kwargs)

        return wrapped

    for name in threads:
        monkeypatch.setattr(web_app, name, noting(name, getattr(web_app, name)))
    app = web_app.create_app(trained_run)
    statuses = {}

    async def send_all() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for name, (path, kwargs) in bodies.items():
                statuses[name] = (await client.post(path, **kwargs)).status_code
        return threading.get_ident()  # the event loop's thread

    loop_thread = asyncio.run(send_all())
    assert statuses == {"raw": 200, "multipart": 200, "json": 200, "comb": 422}
    for name, seen in threads.items():
        assert seen, f"{name} was never called"
        assert loop_thread not in seen, f"{name} ran on the event loop"
