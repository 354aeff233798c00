"""Load test of `mnistlab serve`: N concurrent clients x M requests against a real server.

    python benchmarks/web_load.py RUN [--clients 8] [--requests 200]

Starts the server on a free 127.0.0.1 port, posts a real MNIST digit (as a PNG,
multipart) from each client thread, and reports errors, throughput and latency
percentiles; the table is appended to benchmarks/web_load.md.
"""

from __future__ import annotations

import argparse
import io
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import torch
from PIL import Image

from mnistlab.data import load_split

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _multipart(png: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200)
    a = ap.parse_args()

    x, _ = load_split("mnist", "test")
    pngs = []
    for i in range(16):
        buf = io.BytesIO()
        Image.fromarray(255 - x[i, 0].numpy()).resize((140, 140)).save(buf, "PNG")
        pngs.append(_multipart(buf.getvalue()))

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mnistlab", "serve", a.run, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()

        def client(k: int) -> None:
            for i in range(a.requests):
                body, ctype = pngs[(k + i) % len(pngs)]
                req = urllib.request.Request(
                    url + "/api/predict?input28=false",
                    data=body,
                    headers={"Content-Type": ctype},
                    method="POST",
                )
                t = time.perf_counter()
                err = None
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        r.read()
                except OSError as e:  # HTTPError (4xx/5xx) included
                    err = repr(e)
                dt = time.perf_counter() - t
                with lock:
                    latencies.append(dt)
                    if err:
                        errors.append(err)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=10)

    lat = sorted(latencies)
    p50 = 1000 * statistics.median(lat)
    p99 = 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    total = len(lat)
    line = (
        f"| {time.strftime('%Y-%m-%d %H:%M')} | {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads | {a.clients} x {a.requests} | {total} | {len(errors)} | "
        f"{total / wall:.0f} | {p50:.1f} | {p99:.1f} |"
    )
    print(
        f"requests {total}, errors {len(errors)}, wall {wall:.1f} s, throughput {total / wall:.0f} req/s, "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    out = ROOT / "benchmarks" / "web_load.md"
    if not out.exists():
        out.write_text(
            "# `mnistlab serve` under load\n\nEach row: one run of "
            "`python benchmarks/web_load.py RUN` (multipart PNG uploads of real MNIST "
            "digits, 140x140, to POST /api/predict on 127.0.0.1).\n\n"
            "| when | machine | clients x requests | requests | errors | req/s | p50 ms | p99 ms |\n"
            "|---|---|---|---:|---:|---:|---:|---:|\n"
        )
    with out.open("a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
