"""``mnistlab serve --timeout`` closes a connection whose body trickles in, on every
path: a real server process, raw sockets sending one byte every half second after
headers that declare a megabyte. With httptools (the web extra) and with uvicorn's
pure-Python h11 fallback (httptools made unimportable in the server's process)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.processes import cli_env, free_port

pytestmark = pytest.mark.slow  # needs the trained cnn

TIMEOUT = 2  # --timeout
LIMIT = 12.0  # seconds a connection may stay open before the test calls it a failure
NO_HTTPTOOLS = "import sys; sys.modules['httptools'] = None; import mnistlab.cli as c; c.run()"


def _serve(run, mnist_dir, parser: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    launch = ["-m", "mnistlab"] if parser == "httptools" else ["-c", NO_HTTPTOOLS]
    cmd = [sys.executable, *launch, "serve", str(run), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--timeout", str(TIMEOUT), "--access-log"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(mnist_dir),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not come up in 120 s")


def _trickle(port: int, head: bytes) -> tuple[bool, bytes]:
    """Send ``head``, then a byte every 0.5 s; (closed by the server within LIMIT
    seconds, what the server sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=LIMIT)
    sock.settimeout(0.5)
    got = b""
    end = time.monotonic() + LIMIT
    try:
        sock.sendall(head)
        while time.monotonic() < end:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                sock.sendall(b"x")
                continue
            if not chunk:
                return True, got
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return True, got
    finally:
        sock.close()
    return False, got


def _head(line: str, ctype: str = "image/png") -> bytes:
    return (
        f"{line} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
        "Content-Length: 1000000\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_a_trickled_body_is_cut_off_on_every_path(trained_run, mnist_dir, parser):
    proc, port = _serve(trained_run, mnist_dir, parser)
    cases = {  # request -> the status it gets before the connection is closed
        "POST /nonexistent": 404,
        "GET /healthz": 200,
        "POST /api/read": 408,
        "POST /api/predict": 408,
    }
    try:
        with ThreadPoolExecutor(len(cases)) as pool:
            answers = pool.map(lambda c: _trickle(port, _head(c)), cases)
            results = dict(zip(cases, answers, strict=True))
        # and the server still serves
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        log = proc.communicate(timeout=60)[0]
    for case, (closed, got) in results.items():
        assert closed, f"{case}: still open after {LIMIT} s; the server sent {got[:200]!r}"
        status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else None
        assert status == cases[case], f"{case}: {got[:300]!r}"
        if status == 408:
            assert b'"error":"request body took longer than 2 s' in got.replace(b": ", b":")
    assert proc.returncode == 0, log
    assert '"POST /api/read HTTP/1.1" 408' in log and "Traceback" not in log
