"""Load benchmark of `mnistlab serve`: server configurations side by side, wrk, a hostile mix.

    python benchmarks/web_load.py RUN [--clients 8] [--requests 4000] [--repeats 3]
        [--configs torch:1,auto:1,auto:2] [--hostile] [--quick] [--out-dir DIR]

Each configuration (``BACKEND:WORKERS``, passed to ``mnistlab serve --backend --workers``)
gets its own real server subprocess on a free 127.0.0.1 port. ``--clients`` threads, each
holding one persistent HTTP/1.1 connection (so the client's own cost stays low), post
280x280 drawn digits (real MNIST test digits, dark ink on an opaque white RGBA canvas, as
the drawing page sends them) as multipart to POST /api/predict, and every answer's label
is checked against MNIST's: a server that is fast but wrong fails. After a warm-up,
``--requests`` are timed, ``--repeats`` times; each figure's median over the repeats
is reported. Where ``wrk`` is installed it measures each configuration too, as a client
independent of this one. ``--hostile`` sends a mix in which a fifth of the requests are
malformed (or trickle in slowly) to one configuration, and checks each kind gets its
status, no 5xx, and the server's memory (RSS, workers included) does not grow.

Writes web_load.md and web_load.json into ``--out-dir`` (default: benchmarks/); exits
1 when a check fails (wrong labels, a 5xx, a malformed request answered wrongly).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DIGITS = 20  # the requests cycle through this many MNIST test digits
SIDE = 280  # the drawing page's canvas
PATH = "/api/predict"  # no query flags: the answer includes input28
# Each kind of hostile request and the status it must get; "valid" and "trickle" carry
# a digit whose label is checked too.
EXPECTED = {
    "valid": 200,
    "random_bytes": 422,
    "truncated_png": 422,
    "huge_dims": 413,
    "empty_body": 422,
    "wrong_type": 415,
    "trickle": 200,
}
TRICKLE_PIECES, TRICKLE_SECONDS = 5, 0.3


@dataclass
class Req:
    kind: str
    body: bytes
    ctype: str | None
    label: str | None = None  # the MNIST label, for requests that carry a digit
    pieces: int = 1  # > 1: the body trickles in over TRICKLE_SECONDS


# ---------------------------------------------------------------- request bodies


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _multipart(data: bytes, part_type: str = "image/png") -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    head = f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\nContent-Type: {part_type}\r\n\r\n'
    return head.encode() + data + f"\r\n--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def _chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def huge_png(side: int = 60000) -> bytes:
    """A well-formed PNG (valid CRCs) whose header declares side x side grey pixels, with a
    tiny IDAT: a decompression bomb's header, cheap to send."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def digits() -> list[tuple[bytes, str]]:
    """(280x280 drawn PNG, label) for the first DIGITS MNIST test digits."""
    from mnistlab.bench.preprocess import _drawn
    from mnistlab.data.datasets import load_arrays

    x, y = load_arrays("mnist", "test")
    return [(_png(_drawn(x[i], SIDE)), str(int(y[i]))) for i in range(DIGITS)]


def valid(pngs, i: int) -> Req:
    png, label = pngs[i % len(pngs)]
    return Req("valid", *_multipart(png), label=label)


def hostile(pngs, kind: str, i: int) -> Req:
    png, label = pngs[i % len(pngs)]
    if kind == "random_bytes":
        return Req(kind, *_multipart(random.Random(i).randbytes(2000)))
    if kind == "truncated_png":
        return Req(kind, *_multipart(png[: len(png) * 3 // 5]))
    if kind == "huge_dims":
        return Req(kind, *_multipart(huge_png()))
    if kind == "empty_body":
        return Req(kind, b"", "image/png")
    if kind == "wrong_type":
        return Req(kind, png, "text/plain")
    if kind == "trickle":
        return Req(kind, *_multipart(png), label=label, pieces=TRICKLE_PIECES)
    return valid(pngs, i)


# ---------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn's workers, multiprocessing helpers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):  # the task ended while we looked
                todo += [int(c) for c in task.read_text().split()]
    return out


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class Server:
    """``mnistlab serve RUN --backend B --workers W`` on a free port, as a subprocess."""

    def __init__(self, run: str, backend: str, workers: int):
        self.run, self.backend, self.workers = run, backend, workers
        self.port = _free_port()
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        cmd = [sys.executable, "-m", "mnistlab", "serve", run, "--port", str(self.port)]
        cmd += ["--backend", backend, "--workers", str(workers)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.reported_backend = self._wait_ready()
            self._settle()
        except BaseException:  # never leave a server behind
            self.proc.kill()
            self.proc.wait()
            raise

    def _wait_ready(self, limit: float = 180.0) -> str:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log_tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/readyz")
                r = c.getresponse()
                body = r.read()
                c.close()
                if r.status == 200:
                    return json.loads(body)["backend"]
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {limit:.0f} s: {self.log_tail()}")

    def _settle(self, limit: float = 60.0) -> None:
        # /readyz answers as soon as one worker is up; the others may still be loading
        # their model. Wait until the whole process tree is idle, so every worker takes
        # connections from the start and the RSS baseline is not taken mid-load.
        end, last = time.monotonic() + limit, self.cpu_s()
        while time.monotonic() < end:
            time.sleep(0.5)
            now = self.cpu_s()
            started = len(_tree(self.proc.pid)) > self.workers  # the supervisor and its workers
            if now - last < 0.05 and (self.workers == 1 or started):
                return
            last = now

    def rss_mb(self) -> float:
        return sum(_rss_kb(p) for p in _tree(self.proc.pid)) / 1024

    def cpu_s(self) -> float:
        return sum(_cpu_s(p) for p in _tree(self.proc.pid))

    def log_tail(self, n: int = 2000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-n:].strip()

    def stop(self) -> dict:
        """SIGTERM (the graceful path), then the exit code and any errors it logged."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = f"hung after SIGTERM (killed, {self.proc.wait()})"
        log = self.log_tail(100_000)
        self.log.close()
        errors = log.count("Traceback") + log.count("Exception in ASGI")
        return {
            "exit_code": code,
            "logged_errors": errors,
            "log_tail": log[-1500:] if errors else "",
        }


# ---------------------------------------------------------------- the client


class Client:
    """One persistent HTTP/1.1 connection; a fresh one when the server closed it."""

    def __init__(self, port: int):
        self.port, self.conn, self.used, self.reconnects = port, None, False, 0

    def post(self, req: Req) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.used = False
            stale = self.used  # a kept-alive connection the server may have dropped meanwhile
            try:
                return self._send(req)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt or not stale:
                    raise
                self.reconnects += 1
        raise AssertionError("unreachable")

    def _send(self, req: Req) -> tuple[int, bytes]:
        c = self.conn
        c.putrequest("POST", PATH, skip_accept_encoding=True)
        if req.ctype:
            c.putheader("Content-Type", req.ctype)
        c.putheader("Content-Length", str(len(req.body)))
        if req.pieces == 1:
            c.endheaders(req.body)  # headers and body in one write
        else:
            c.endheaders()
            step = -(-len(req.body) // req.pieces)
            for k in range(0, len(req.body), step):
                time.sleep(TRICKLE_SECONDS / req.pieces)
                c.send(req.body[k : k + step])
        r = c.getresponse()
        data = r.read()
        self.used = True
        if r.will_close:
            self.close()
        return r.status, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def _answer(status: int, data: bytes, req: Req) -> str:
    """How a request went: its status, plus for a 200 whether the label was right."""
    if status != 200 or req.label is None:
        return str(status)
    try:
        ans = json.loads(data)
        good = ans["label"] == req.label
        return "200" if good and "input28" in ans else ("200-no-input28" if good else "200-wrong")
    except (ValueError, KeyError, TypeError):
        return "200-bad-json"


def drive(port: int, plan: list[Req], clients: int) -> dict:
    """Send ``plan`` from ``clients`` threads (request i from thread i % clients); every
    request's (kind, outcome, seconds), the wall time, the client's own CPU time."""
    done: list[list] = [[] for _ in range(clients)]
    reconnects = [0] * clients

    def worker(k: int) -> None:
        cl = Client(port)
        for req in plan[k::clients]:
            t = time.perf_counter()
            try:
                status, data = cl.post(req)
                outcome = _answer(status, data, req)
            except (OSError, http.client.HTTPException):
                cl.close()
                outcome = "conn_error"
            done[k].append((req.kind, outcome, time.perf_counter() - t))
        reconnects[k] = cl.reconnects
        cl.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "records": [r for d in done for r in d],
        "wall": wall,
        "client_cpu": cpu,
        "reconnects": sum(reconnects),
    }


def _pct(sorted_s: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in ms."""
    if not sorted_s:
        return None
    return round(1000 * sorted_s[max(0, math.ceil(q * len(sorted_s)) - 1)], 3)


def summary(run: dict, kinds=("valid",)) -> dict:
    """Throughput, latency and correctness of the requests of ``kinds`` in one drive()."""
    rec = [r for r in run["records"] if r[0] in kinds]
    ok = sorted(s for _, o, s in rec if o.startswith("200"))
    right = sum(o in ("200", "200-no-input28") for _, o, _ in rec)
    n = len(rec)
    return {
        "requests": n,
        "wall_s": round(run["wall"], 3),
        "req_s": round(n / run["wall"], 1),
        "p50_ms": _pct(ok, 0.50),
        "p99_ms": _pct(ok, 0.99),
        "errors": sum(not o.startswith("200") for _, o, _ in rec),
        "conn_errors": sum(o == "conn_error" for _, o, _ in rec),
        "status_5xx": sum(o[:1] == "5" for _, o, _ in run["records"]),
        # Over every request, so one refused or unanswered counts as wrong.
        "accuracy": round(right / n, 4) if n else None,
        "missing_input28": sum(o == "200-no-input28" for _, o, _ in rec),
        "reconnects": run["reconnects"],
        "client_cpu_ms_per_req": round(1000 * run["client_cpu"] / max(1, len(run["records"])), 3),
    }


# ---------------------------------------------------------------- wrk


def run_wrk(port: int, req: Req, seconds: int) -> dict:
    exe = shutil.which("wrk")
    if not exe:
        return {"available": False}
    with tempfile.TemporaryDirectory() as d:
        Path(d, "body.bin").write_bytes(req.body)
        script = Path(d, "post.lua")
        # The body from a file: Lua long strings would turn its CRLFs into LFs.
        script.write_text(
            f'local f = assert(io.open({json.dumps(str(Path(d, "body.bin")))}, "rb"))\n'
            'wrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\n'
            f'wrk.headers["Content-Type"] = {json.dumps(req.ctype)}\n'
        )
        cmd = [
            exe,
            "-t2",
            "-c8",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{PATH}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> dict:
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}

    def latency(q: str) -> float | None:
        m = re.search(rf"^\s*{q}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        return round(float(m.group(1)) * unit[m.group(2)], 2) if m else None

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "available": True,
        "req_s": float(rps.group(1)) if rps else None,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": int(total.group(1)) if total else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, sock.groups())) if sock else 0,
        "raw": out if not rps else "",
    }


# ---------------------------------------------------------------- the phases


def parse_configs(text: str) -> list[tuple[str, int]]:
    out = []
    for tok in filter(None, (t.strip() for t in text.split(","))):
        backend, _, w = tok.partition(":")
        if backend not in ("auto", "torch", "onnx") or not w.isdigit() or int(w) < 1:
            raise SystemExit(
                f"bad config {tok!r}: want BACKEND:WORKERS, BACKEND auto, torch or onnx"
            )
        out.append((backend, int(w)))
    return out


def _name(reported: str, workers: int) -> str:
    engine = "onnx" if reported == "onnxruntime" else reported
    return f"{engine}, {workers} worker{'s' if workers > 1 else ''}"


def speed(a, pngs, backend: str, workers: int) -> dict:
    srv = Server(a.run, backend, workers)
    try:
        drive(srv.port, [valid(pngs, i) for i in range(a.warmup)], a.clients)
        repeats = []
        for r in range(a.repeats):
            cpu0 = srv.cpu_s()
            run = drive(srv.port, [valid(pngs, i + r) for i in range(a.requests)], a.clients)
            s = summary(run)
            s["server_cpu_ms_per_req"] = round(1000 * (srv.cpu_s() - cpu0) / a.requests, 3)
            repeats.append(s)
            print(
                f"  repeat {r + 1}: {s['req_s']:.0f} req/s, p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, errors {s['errors']}, accuracy {s['accuracy']}",
                flush=True,
            )
        wrk = (
            run_wrk(srv.port, valid(pngs, 0), a.wrk_seconds)
            if a.wrk_seconds
            else {"available": False, "skipped": True}
        )
    finally:
        server = srv.stop()
    keys = ("req_s", "p50_ms", "p99_ms", "server_cpu_ms_per_req", "client_cpu_ms_per_req")
    median = {k: statistics.median(s[k] for s in repeats) for k in keys}
    for k in ("errors", "conn_errors", "status_5xx", "missing_input28", "reconnects"):
        median[k] = sum(s[k] for s in repeats)  # totals over the repeats
    median["accuracy"] = min(s["accuracy"] or 0 for s in repeats)  # the worst repeat
    return {
        "name": _name(srv.reported_backend, workers),
        "flags": f"--backend {backend}" + (f" --workers {workers}" if workers > 1 else ""),
        "backend": srv.reported_backend,
        "workers": workers,
        "repeats": repeats,
        "median": median,
        "wrk": wrk,
        "server": server,
    }


def hostile_mix(a, pngs, backend: str, workers: int) -> dict:
    n = a.hostile_requests
    bad = [k for k in EXPECTED if k != "valid"]
    kinds = [bad[i % len(bad)] for i in range(round(0.2 * n))]
    kinds += ["valid"] * (n - len(kinds))
    random.Random(0).shuffle(kinds)
    plan = [hostile(pngs, k, i) for i, k in enumerate(kinds)]
    srv = Server(a.run, backend, workers)
    try:
        drive(srv.port, [valid(pngs, i) for i in range(a.warmup)], a.clients)
        rss0 = srv.rss_mb()
        run = drive(srv.port, plan, a.clients)
        time.sleep(0.5)  # let the workers finish any response still being freed
        rss1 = srv.rss_mb()
    finally:
        server = srv.stop()
    by_kind = {}
    for kind, want in EXPECTED.items():
        got: dict[str, int] = {}
        for k, o, _ in run["records"]:
            if k == kind:
                got[o] = got.get(o, 0) + 1
        by_kind[kind] = {
            "sent": sum(got.values()),
            "expected": want,
            "got": got,
            "ok": set(got) <= {str(want)},
        }
    trickle = summary(run, ("trickle",))
    return {
        "name": _name(srv.reported_backend, workers),
        "flags": f"--backend {backend}" + (f" --workers {workers}" if workers > 1 else ""),
        "requests": n,
        "valid": summary(run),
        "trickle_p50_ms": trickle["p50_ms"],
        "kinds": by_kind,
        "status_5xx": sum(o[:1] == "5" for _, o, _ in run["records"]),
        "conn_errors": sum(o == "conn_error" for _, o, _ in run["records"]),
        "rss_before_mb": round(rss0, 1),
        "rss_after_mb": round(rss1, 1),
        "rss_growth_mb": round(rss1 - rss0, 1),
        "server": server,
    }


def checks(doc: dict) -> dict:
    """The correctness verdicts (no timing: that depends on the machine)."""
    out = {}
    for c in doc["configs"]:
        m = c["median"]
        out[f"{c['name']}: labels >= 95%"] = (m["accuracy"] or 0) >= 0.95
        out[f"{c['name']}: no errors, input28 in every answer"] = (
            m["errors"] == 0 and m["missing_input28"] == 0
        )
        out[f"{c['name']}: server stopped cleanly"] = (
            c["server"]["exit_code"] == 0 and c["server"]["logged_errors"] == 0
        )
    h = doc["hostile"]
    if h:
        out["hostile: no 5xx"] = h["status_5xx"] == 0
        out["hostile: every kind got its status"] = all(k["ok"] for k in h["kinds"].values())
        out["hostile: labels >= 95%"] = (h["valid"]["accuracy"] or 0) >= 0.95
        out["hostile: server stopped cleanly"] = (
            h["server"]["exit_code"] == 0 and h["server"]["logged_errors"] == 0
        )
    return out


# ---------------------------------------------------------------- the report


def machine() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1) if found else cpu
    soft = {}
    for pkg in ("torch", "onnxruntime", "fastapi", "uvicorn", "httptools", "uvloop"):
        try:
            soft[pkg] = version(pkg)
        except PackageNotFoundError:
            soft[pkg] = None
    wrk = shutil.which("wrk")
    if wrk:
        v = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split()
        soft["wrk"] = v[1] if len(v) > 1 else "?"
    import platform

    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "software": soft,
    }


def _ms(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _speed_md(doc: dict) -> list[str]:
    s = doc["settings"]
    lines = [
        "## Speed, side by side",
        "",
        f"{s['clients']} client threads, each with one persistent HTTP/1.1 connection (`http.client`), post "
        f"{s['image']} ({s['png_bytes']:,} bytes on average; {s['digits']} real MNIST test digits, cycled) to "
        f"`POST {PATH}` with no query flags (so each answer carries `input28`). Each configuration is its own "
        f"`mnistlab serve` subprocess on 127.0.0.1: {s['warmup']} warm-up requests (not counted), then "
        f"{s['requests']:,} timed requests, {s['repeats']} time(s); the table gives each figure's median over the repeats. "
        "*Labels right*: the answer's label equals MNIST's (worst repeat). *CPU ms/req*: the server's "
        "processes' CPU time (from /proc) per request. *vs first*: throughput against the first row.",
        "",
        "| server | flags | req/s | vs first | p50 ms | p99 ms | errors | labels right | server CPU ms/req | wrk req/s | wrk p50 ms | wrk p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in doc["configs"]:
        m, w = c["median"], c["wrk"]
        if w.get("available"):
            wrk = f"{w['req_s']:.0f} | {_ms(w['p50_ms'])} | {_ms(w['p99_ms'])}"
        else:
            wrk = ("not run (--quick)" if w.get("skipped") else "wrk not installed") + " | – | –"
        lines.append(
            f"| {c['name']} | `{c['flags']}` | {m['req_s']:.0f} | {c['ratio']:.2f}x | {_ms(m['p50_ms'])} | "
            f"{_ms(m['p99_ms'])} | {m['errors']} | {100 * (m['accuracy'] or 0):.1f}% | "
            f"{m['server_cpu_ms_per_req']:.2f} | {wrk} |"
        )
    lines.append("")
    for c in doc["configs"]:
        reps = ", ".join(f"{r['req_s']:.0f}" for r in c["repeats"])
        bad = [f"{k} {c['wrk'][k]}" for k in ("non_2xx", "socket_errors") if c["wrk"].get(k)]
        lines.append(
            f"- {c['name']}: req/s per repeat {reps}" + (f"; wrk: {', '.join(bad)}" if bad else "")
        )
    if doc["configs"]:
        cost = statistics.median(c["median"]["client_cpu_ms_per_req"] for c in doc["configs"])
        lines += [
            "",
            f"The client (this script) used {cost:.2f} ms of CPU per request; it shares the machine's cores "
            "with the server. wrk (`-t2 -c8 -d10s --latency`, the first digit's multipart body, labels "
            "not checked) is an independent client written in C.",
        ]
    return [*lines, ""]


def _hostile_md(h: dict) -> list[str]:
    v = h["valid"]
    lines = [
        f"## Hostile mix ({h['name']})",
        "",
        f"{h['requests']:,} requests from the same clients to `{h['flags']}`, after the warm-up; a fifth "
        "of them spread over the kinds below, in a shuffled order. Random bytes, the truncated PNG (its "
        "first 60%) and the 60000x60000 PNG (a valid IHDR and CRCs, a tiny IDAT) are multipart "
        "`image/png` parts; the empty body is a raw `image/png` one; the wrong type is a PNG sent as "
        f"`text/plain`; the trickle sends its headers, then a valid multipart body in {TRICKLE_PIECES} "
        f"pieces over {TRICKLE_SECONDS} s.",
        "",
        "| kind | sent | expected | got | ok |",
        "|---|---:|---:|---|---|",
    ]
    for kind, k in h["kinds"].items():
        got = ", ".join(f"{o}: {n}" for o, n in sorted(k["got"].items()))
        lines.append(
            f"| {kind} | {k['sent']} | {k['expected']} | {got} | {'yes' if k['ok'] else '**NO**'} |"
        )
    lines += [
        "",
        f"- valid requests: {v['requests']:,} at {v['req_s']:.0f} req/s (over the whole mix's wall time), "
        f"p50 {_ms(v['p50_ms'])} ms, p99 {_ms(v['p99_ms'])} ms, labels right {100 * (v['accuracy'] or 0):.1f}%"
        f"; the trickled ones: p50 {_ms(h['trickle_p50_ms'])} ms",
        f"- 5xx: {h['status_5xx']}; connection errors: {h['conn_errors']}",
        f"- server RSS (all its processes): {h['rss_before_mb']:.1f} MB after the warm-up, "
        f"{h['rss_after_mb']:.1f} MB after the mix: **{h['rss_growth_mb']:+.1f} MB** (goal: under 20 MB)",
        "",
    ]
    return lines


def markdown(doc: dict) -> str:
    m = doc["machine"]
    soft = ", ".join(f"{k} {v}" for k, v in m["software"].items() if v)
    lines = [
        "# `mnistlab serve` under load",
        "",
        "Written by `benchmarks/web_load.py` (issue 17); the raw numbers are in `web_load.json`. Rerun:",
        "",
        "    python benchmarks/web_load.py RUN --hostile      # RUN: a trained run folder; --quick for a smoke run",
        "",
        f"- **machine:** {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable), {m['platform']}",
        f"- **software:** Python {m['python']}, {soft}",
        f"- **date:** {doc['date']} · **command:** `{doc['command']}`",
        "",
    ]
    if doc["configs"]:
        lines += _speed_md(doc)
    if doc["hostile"]:
        lines += _hostile_md(doc["hostile"])
    lines += ["## Checks", ""]
    lines += [f"- [{'x' if ok else ' '}] {name}" for name, ok in doc["checks"].items()]
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(doc: dict, out_dir: Path) -> str:
    text = markdown(doc)
    _atomic_write(out_dir / "web_load.json", json.dumps(doc, indent=1) + "\n")
    _atomic_write(out_dir / "web_load.md", text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run folder, checkpoint or .onnx file")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=None, help="timed requests per repeat (4000)")
    ap.add_argument("--repeats", type=int, default=None, help="(3)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed requests first (200)")
    ap.add_argument(
        "--configs", default="torch:1,auto:1,auto:2", help="BACKEND:WORKERS,...; '' for none"
    )
    ap.add_argument("--hostile", action="store_true", help="also run the hostile mix")
    ap.add_argument("--hostile-config", default="auto:2")
    ap.add_argument("--hostile-requests", type=int, default=None, help="(10000)")
    ap.add_argument("--wrk-seconds", type=int, default=None, help="0: no wrk (10)")
    ap.add_argument(
        "--quick", action="store_true", help="a smoke run: few requests, 1 repeat, no wrk"
    )
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks")
    a = ap.parse_args(argv)
    q = a.quick
    a.requests = a.requests or (240 if q else 4000)
    a.repeats = a.repeats or (1 if q else 3)
    a.warmup = a.warmup if a.warmup is not None else (40 if q else 200)
    a.hostile_requests = a.hostile_requests or (300 if q else 10_000)
    a.wrk_seconds = a.wrk_seconds if a.wrk_seconds is not None else (0 if q else 10)
    configs = parse_configs(a.configs)
    hostile_cfg = parse_configs(a.hostile_config)
    if len(hostile_cfg) != 1:
        raise SystemExit("--hostile-config takes one BACKEND:WORKERS")

    pngs = digits()
    doc = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/web_load.py RUN "
        + " ".join(sys.argv[2:] if argv is None else argv[1:]),
        "settings": {
            "clients": a.clients,
            "requests": a.requests,
            "repeats": a.repeats,
            "warmup": a.warmup,
            "image": f"{SIDE}x{SIDE} drawn digit, RGBA PNG, multipart",
            "digits": DIGITS,
            "png_bytes": round(statistics.mean(len(p) for p, _ in pngs)),
            "quick": q,
            "hostile_requests": a.hostile_requests if a.hostile else None,
            "wrk_seconds": a.wrk_seconds,
        },
        "configs": [],
        "hostile": None,
    }
    for backend, workers in configs:
        print(
            f"server --backend {backend} --workers {workers}: {a.repeats} x {a.requests} requests from {a.clients} clients",
            flush=True,
        )
        doc["configs"].append(speed(a, pngs, backend, workers))
    first = doc["configs"][0]["median"]["req_s"] if doc["configs"] else None
    for c in doc["configs"]:
        c["ratio"] = round(c["median"]["req_s"] / first, 2) if first else None
    if a.hostile:
        print(
            f"hostile mix: {a.hostile_requests} requests against --backend {hostile_cfg[0][0]} --workers {hostile_cfg[0][1]}",
            flush=True,
        )
        doc["hostile"] = hostile_mix(a, pngs, *hostile_cfg[0])
    doc["checks"] = checks(doc)
    text = write_outputs(doc, a.out_dir)
    print("\n" + text)
    return 0 if all(doc["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
