"""How long the worst uploads hold a 1-worker server's event loop: `/healthz` latency
under load.

    python benchmarks/loop_stall.py RUN [--probes 600] [--seconds 2] [--src DIR]
        [--label NAME] [--out-dir DIR]

``mnistlab serve RUN --workers 1`` runs as a real subprocess on a free 127.0.0.1 port
(``--src``: a source tree to run it from instead of this checkout's, to measure an older
version the same way). For each load, 2 client processes (processes, so that their
GIL is not the prober's) each hold one persistent HTTP/1.1 connection and send the same
worst-case upload back to back, while this process sends ``--probes`` ``GET /healthz``
on its own connection, ``--seconds`` / 100 apart, and times each answer. The loads:

- **idle**: no clients, the baseline;
- **comb**: a 4096 x 160 PNG of 1-pixel black bars at a 2-pixel pitch (about 1
  kB that decodes to 2,048 "digits") to ``POST /api/read`` (answered 422);
- **json_2mb**: a JSON body just under the 2 MB cap, ``{"image": data URL}`` of a
  photo-like PNG, to ``POST /api/predict``;
- **photo**: a 4096 x 4096 photo-like PNG under 2 MB (smooth shading plus noise) as a
  raw ``image/png`` body to ``POST /api/predict``.

Every answer's status is recorded (a 5xx or a dropped connection is a failure). Writes
loop_stall.md and loop_stall.json (``--label`` in their names when given) into
``--out-dir`` (default: benchmarks/); exits 1 when a request failed.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MAX_BODY = 2 * 1024 * 1024
CLIENTS = 2


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def comb() -> bytes:
    a = np.full((160, 4096), 255, np.uint8)
    a[:, ::2] = 0
    return _png(a)


def photo(side: int, speckle: float) -> bytes:
    """A photo-like grey PNG of a dark stroke (a "1") on light paper: smooth shading (a
    bilinear upscale of random 256-pixel blocks) with a fraction ``speckle`` of its
    pixels nudged, so that it neither compresses to nothing nor is noise, and the whole
    preprocessing runs on it."""
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (side // 256, side // 256), np.uint8))
    a = np.asarray(coarse.resize((side, side), Image.BILINEAR), np.int16)
    a = a + (rng.random(a.shape) < speckle) * rng.integers(-8, 9, a.shape, np.int16)
    a = a // 2 + 128  # light paper ...
    a[side // 4 : 3 * side // 4, side // 2 - side // 40 : side // 2 + side // 40] = 0  # ... a "1"
    return _png(np.clip(a, 0, 255).astype(np.uint8))


def loads() -> dict[str, tuple[str, str, bytes]]:
    """name -> (path, content type, body), each body at most MAX_BODY bytes."""
    big = photo(4096, 0.018)
    smooth = photo(4096, 0.006)  # its data URL fills most of a 2 MB JSON body
    doc = json.dumps({"image": "data:image/png;base64," + _b64(smooth)}).encode()
    assert len(big) <= MAX_BODY and len(doc) <= MAX_BODY, (len(big), len(doc))
    return {
        "comb": ("/api/read", "image/png", comb()),
        "json_2mb": ("/api/predict?input28=false", "application/json", doc),
        "photo": ("/api/predict?input28=false", "image/png", big),
    }


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: str, src: str | None) -> tuple[subprocess.Popen, int, object]:
    port = _free_port()
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the caller)
    cmd = [sys.executable, "-m", "mnistlab", "serve", run, "--workers", "1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    end = time.monotonic() + 180
    while time.monotonic() < end:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited {proc.returncode}: {log.read()[-2000:]!r}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return proc, port, log
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not come up in 180 s")


def client(port: int, path: str, ctype: str, body: bytes, stop, counts) -> None:
    """Send ``body`` back to back until ``stop`` is set; count answers by status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    seen: dict[int, int] = {}
    while not stop.is_set():
        try:
            conn.request("POST", path, body, {"Content-Type": ctype})
            r = conn.getresponse()
            r.read()
            seen[r.status] = seen.get(r.status, 0) + 1
            if r.getheader("connection", "").lower() == "close":
                conn.close()
        except OSError:
            seen[0] = seen.get(0, 0) + 1  # dropped: a failure
            conn.close()
    counts.put(seen)


def probe(port: int, n: int, gap: float) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        out.append((time.perf_counter() - t) * 1e3)
        assert r.status == 200, r.status
        time.sleep(gap)
    return out


def measure(port: int, load, n: int, gap: float) -> dict:
    ctx = mp.get_context("fork")
    stop, counts = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=client, args=(port, *load, stop, counts))
        for _ in range(CLIENTS if load else 0)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0 if procs else 0)  # the clients are under way
    lat = probe(port, n, gap)
    stop.set()
    statuses: dict[str, int] = {}
    for _ in procs:
        for k, v in counts.get(timeout=120).items():
            statuses[str(k)] = statuses.get(str(k), 0) + v
    for p in procs:
        p.join()
    q = statistics.quantiles(lat, n=100)
    return {
        "p50_ms": statistics.median(lat),
        "p99_ms": q[98],
        "max_ms": max(lat),
        "probes": n,
        "statuses": statuses,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--probes", type=int, default=600)
    ap.add_argument("--seconds", type=float, default=1.0, help="probe gap x 100")
    ap.add_argument("--src", help="run the server from this source tree (PYTHONPATH)")
    ap.add_argument("--label", default="")
    ap.add_argument("--loads", default="idle,comb,json_2mb,photo", help="which, in order")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks")
    a = ap.parse_args(argv)
    bodies = loads()
    proc, port, log = start_server(a.run, a.src)
    results = {}
    try:
        for name in a.loads.split(","):
            load = None if name == "idle" else bodies[name]
            results[name] = measure(port, load, a.probes, a.seconds / 100)
            r = results[name]
            print(
                f"{name:9s} p50 {r['p50_ms']:7.2f}  p99 {r['p99_ms']:7.2f}  "
                f"max {r['max_ms']:7.2f} ms  {r['statuses']}",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    failed = any(
        k in ("0", *map(str, range(500, 600))) for r in results.values() for k in r["statuses"]
    )
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "command": "python benchmarks/loop_stall.py " + " ".join(argv or sys.argv[1:]),
        "src": a.src or "this checkout",
        "sizes": {k: len(v[2]) for k, v in bodies.items()},
    }
    stem = "loop_stall" + (f"_{a.label}" if a.label else "")
    a.out_dir.mkdir(parents=True, exist_ok=True)
    _write(a.out_dir / f"{stem}.json", json.dumps({**meta, "results": results}, indent=2))
    _write(a.out_dir / f"{stem}.md", _table(meta, results))
    return 1 if failed else 0


def _table(meta: dict, results: dict) -> str:
    lines = [
        "# `/healthz` latency while 2 clients send the worst uploads (1 worker)",
        "",
        f"Written by `benchmarks/loop_stall.py` on {meta['date']}; server from {meta['src']}.",
        f"Command: `{meta['command']}`. Bodies: "
        + ", ".join(f"{k} {v:,} bytes" for k, v in meta["sizes"].items())
        + ".",
        "",
        "| load | healthz p50 ms | p99 ms | max ms | probes | answers to the load |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())) or "-"
        lines.append(
            f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} "
            f"| {r['probes']} | {answers} |"
        )
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
