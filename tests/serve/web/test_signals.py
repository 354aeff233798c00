"""SIGHUP (a terminal hanging up) stops ``mnistlab serve`` the way SIGTERM does: the
request in flight is answered, then the server exits 0; with one worker (it used to
die at once, status 129) and with several (uvicorn's supervisor used to restart its
workers, and give up when a new one was slow to load its model)."""

from __future__ import annotations

import signal
import time
import urllib.request

import pytest

from tests.support.processes import Server, response, worker_pids

pytestmark = pytest.mark.slow  # needs the trained cnn


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_lets_the_request_in_flight_finish_then_exits_0(
    trained_run,
    mnist_dir,
    upload,
    workers,
):
    head, body, label = upload
    server = Server(trained_run, mnist_dir, "--workers", str(workers), "--access-log")
    try:
        if workers > 1:
            assert len(worker_pids(server.proc.pid)) == workers
        sock = server.connect()
        sock.sendall(head + body[: len(body) // 2])  # the request has begun ...
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGHUP)  # ... when the terminal hangs up
        time.sleep(1.0)
        assert server.proc.poll() is None  # draining, not gone
        sock.sendall(body[len(body) // 2 :])
        status, answer = response(sock)
        assert status == 200 and answer["label"] == label
        assert server.proc.wait(timeout=30) == 0
    finally:
        log = server.stop()
    assert "restarting" not in log and "not ready in time" not in log, log
    with pytest.raises(OSError):  # and no longer answers
        urllib.request.urlopen(server.url("/healthz"), timeout=2)
