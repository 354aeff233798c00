"""``mnistlab serve`` as a deployer runs it: a real server process on 127.0.0.1, raw
sockets for the requests a browser would never send (a body or headers that trickle
in), SIGTERM while a request is in flight, worker processes, access logs; and the
ONNX Runtime backend checked against torch."""

from __future__ import annotations

import errno
import http.server
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import torch

from mnistlab.serve.predict import load_predictor
from tests.support.cli import error_line, run_cli
from tests.support.processes import Server, cli_env, response, worker_pids

pytestmark = pytest.mark.slow  # every test here needs the trained cnn


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_the_request_in_flight_finish(trained_run, mnist_dir, upload, workers):
    head, body, label = upload
    server = Server(trained_run, mnist_dir, "--workers", str(workers))
    try:
        if workers > 1:  # uvicorn's supervisor and its worker processes
            assert len(worker_pids(server.proc.pid)) == workers
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
        status, answer = response(sock)
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
        status, answer = response(slow_body)
        assert status == 408 and "longer than 1 s" in answer["error"]
        slow_head.settimeout(10)
        assert slow_head.recv(100) == b""  # closed by the server, without an answer
        fine = server.connect()
        fine.sendall(head + body)  # and the server still serves
        status, answer = response(fine)
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
        assert response(sock)[0] == 200
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


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_serve_on_cuda_without_cuda(untrained_run, mnist_dir):
    error_line(
        run_cli(mnist_dir, "serve", untrained_run, "--device", "cuda"), 2, "--device", "CUDA"
    )


def test_serve_on_a_busy_port(untrained_run, mnist_dir):
    other = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        port = other.server_address[1]
        proc = run_cli(mnist_dir, "serve", untrained_run, "--port", port, timeout=60)
        error_line(proc, 1, f"port {port}", "in use", "--port")
        assert "serving" not in proc.stdout
    finally:
        other.shutdown()
        other.server_close()


def test_serve_on_a_privileged_port(untrained_run, mnist_dir):
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", 1))
    except OSError as e:
        assert e.errno in (errno.EACCES, errno.EADDRINUSE)
    else:
        pytest.skip("this user may bind privileged ports")
    finally:
        probe.close()
    proc = run_cli(mnist_dir, "serve", untrained_run, "--port", "1", timeout=60)
    error_line(proc, 1, "port 1", "--port")
    assert "serving" not in proc.stdout
