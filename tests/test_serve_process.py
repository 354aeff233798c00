"""``mnistlab serve`` as a deployer runs it: a real server process on 127.0.0.1, raw
sockets for the requests a browser would never send (a body or headers that trickle
in), SIGTERM while a request is in flight, worker processes, access logs; and the
ONNX Runtime backend checked against torch."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistlab.serve.predict import load_predictor
from tests.conftest import cli_env

pytestmark = pytest.mark.slow  # every test here needs the trained cnn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m mnistlab serve RUN --port P *flags``, up once /healthz answers."""

    def __init__(self, run: Path, mnist_dir: Path, *flags: str) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mnistlab", "serve", str(run), "--port", str(self.port), *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=cli_env(mnist_dir),
        )
        deadline = time.monotonic() + 300  # a busy 2-core machine starts workers slowly
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read()
            try:
                urllib.request.urlopen(self.url("/healthz"), timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        self.proc.kill()  # never leave a server behind a failed test
        self.proc.communicate(timeout=60)
        raise AssertionError("the server did not come up in 300 s")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=10) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        return out


@pytest.fixture(scope="module")
def upload(mnist) -> tuple[bytes, bytes, str]:
    """(headers, body, true label): a multipart POST of a real MNIST test digit as a
    280x280 black-on-white PNG, the way the drawing page sends one."""
    a = 255 - mnist.test[0][3, 0].numpy()
    buf = io.BytesIO()
    Image.fromarray(a).resize((280, 280), Image.BICUBIC).save(buf, "PNG")
    boundary = "mnistlab-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + buf.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        "POST /api/predict?input28=false HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head, body, str(int(mnist.test[1][3]))


def _response(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of the one response on ``sock`` (Connection: close)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _workers(pid: int) -> list[int]:
    """The worker processes under ``pid`` (multiprocessing's resource tracker is not one)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_the_request_in_flight_finish(trained_run, mnist_dir, upload, workers):
    head, body, label = upload
    server = Server(trained_run, mnist_dir, "--workers", str(workers))
    try:
        if workers > 1:  # uvicorn's supervisor and its worker processes
            assert len(_workers(server.proc.pid)) == workers
        assert server.get("/readyz") == (
            200,
            {"status": "ready", "model": "cnn", "backend": "onnxruntime"},
        )
        sock = server.connect()
        sock.sendall(head + body[: len(body) // 2])  # the request has begun ...
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)  # ... when the server is told to stop
        time.sleep(1.0)
        assert server.proc.poll() is None  # still draining, not gone
        sock.sendall(body[len(body) // 2 :])
        status, answer = _response(sock)
        assert status == 200 and answer["label"] == label
        assert server.proc.wait(timeout=30) == 0  # then it exits, cleanly
    finally:
        server.stop()
    with pytest.raises(OSError):  # and no longer answers
        urllib.request.urlopen(server.url("/healthz"), timeout=2)


def test_slow_bodies_and_headers_are_cut_off_and_logged(trained_run, mnist_dir, upload):
    head, body, label = upload
    server = Server(trained_run, mnist_dir, "--timeout", "1", "--access-log")
    try:
        slow_body = server.connect()
        slow_body.sendall(head + body[:100])  # and no more
        slow_head = server.connect()
        slow_head.sendall(head[:40])  # half a request line and no headers
        status, answer = _response(slow_body)
        assert status == 408 and "longer than 1 s" in answer["error"]
        slow_head.settimeout(10)
        assert slow_head.recv(100) == b""  # closed by the server, without an answer
        fine = server.connect()
        fine.sendall(head + body)  # and the server still serves
        status, answer = _response(fine)
        assert status == 200 and answer["label"] == label
    finally:
        log = server.stop()
    assert '"POST /api/predict?input28=false HTTP/1.1" 200' in log
    assert '"POST /api/predict?input28=false HTTP/1.1" 408' in log


def test_no_access_log_unless_asked(trained_run, mnist_dir, upload):
    head, body, _ = upload
    server = Server(trained_run, mnist_dir, "--backend", "torch")
    try:
        assert server.get("/readyz")[1]["backend"] == "torch"
        sock = server.connect()
        sock.sendall(head + body)
        assert _response(sock)[0] == 200
    finally:
        log = server.stop()
    assert "POST" not in log and log.startswith("serving ")


def test_onnx_runtime_backend_matches_torch(trained_run, mnist):
    x = mnist.test[0][:256, 0].numpy()  # (256, 28, 28) uint8, real digits
    onnx = load_predictor(trained_run, backend="onnx", threads=1)
    torch_ = load_predictor(trained_run, backend="torch")
    assert (onnx.backend, torch_.backend) == ("onnxruntime", "torch")
    p, q = onnx.probs(x), torch_.probs(x)
    np.testing.assert_allclose(p, q, atol=1e-5)
    assert (p.argmax(1) == mnist.test[1][:256].numpy()).mean() > 0.95


def test_bad_serve_options_are_one_line(trained_run, mnist_dir):
    for flags, needle in [
        (["--backend", "tensorflow"], "--backend must be auto, torch or onnx"),
        (["--workers", "0"], "--workers"),
        (["--timeout", "0"], "--timeout"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "mnistlab", "serve", str(trained_run), *flags],
            capture_output=True,
            text=True,
            timeout=60,
            env=cli_env(mnist_dir),
        )
        assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
