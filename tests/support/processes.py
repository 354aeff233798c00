"""Real processes: the command line's environment, and a real ``mnistlab serve``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli_env(mnist_dir: Path) -> dict:
    """The environment for a ``python -m mnistlab`` subprocess: real data, no downloads."""
    return {
        **os.environ,
        "MNISTLAB_DATA": str(mnist_dir),
        "MNISTLAB_MIRRORS": "http://127.0.0.1:9/",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m mnistlab serve RUN --port P *flags``, up once /healthz answers."""

    def __init__(self, run: Path, mnist_dir: Path, *flags: str) -> None:
        self.port = free_port()
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


def response(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of the one response on ``sock`` (Connection: close)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def worker_pids(pid: int) -> list[int]:
    """The worker processes under ``pid`` (multiprocessing's resource tracker is not one)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]
