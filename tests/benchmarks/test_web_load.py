"""benchmarks/web_load.py: its hostile requests are what they claim to be, it reads wrk's
output, and a quick run against a real `mnistlab serve` gets every answer right."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import zlib

import pytest
from PIL import Image

from tests.support.processes import REPO, cli_env

SCRIPT = REPO / "benchmarks" / "web_load.py"

# What each kind of request must get, written out here rather than read from the script,
# so a script that expected the wrong status would fail.
STATUS = {
    "valid": "200",
    "random_bytes": "422",
    "truncated_png": "422",
    "huge_dims": "413",
    "empty_body": "422",
    "wrong_type": "415",
    "trickle": "200",
}

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:40123/api/predict
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.41ms    4.15ms   1.02s    66.10%
    Req/Sec   351.75    162.00   840.00     85.00%
  Latency Distribution
     50%  812.00us
     75%   11.28ms
     90%   13.72ms
     99%    1.20s
  7010 requests in 10.00s, 3.56MB read
  Socket errors: connect 0, read 2, write 1, timeout 0
  Non-2xx or 3xx responses: 3
Requests/sec:    699.57
Transfer/sec:    355.25KB
"""


@pytest.fixture(scope="module")
def web_load():
    spec = importlib.util.spec_from_file_location("web_load", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["web_load"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_parse_wrk(web_load):
    got = web_load.parse_wrk(WRK_OUTPUT)
    assert got["req_s"] == 699.57 and got["requests"] == 7010
    assert got["p50_ms"] == 0.81 and got["p99_ms"] == 1200.0  # us and s, in ms
    assert got["non_2xx"] == 3 and got["socket_errors"] == 3


def test_huge_png_is_a_valid_bomb_header(web_load):
    png = web_load.huge_png()
    assert len(png) < 200  # cheap to send
    pos = 8
    while pos < len(png):  # every chunk's CRC checks out
        n = int.from_bytes(png[pos : pos + 4], "big")
        tag, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + n]
        assert int.from_bytes(png[pos + 8 + n : pos + 12 + n], "big") == zlib.crc32(tag + data)
        pos += 12 + n
    with pytest.raises(Image.DecompressionBombError, match="3600000000 pixels"):
        Image.open(io.BytesIO(png))


@pytest.mark.slow
def test_quick_run_against_a_real_server(trained_run, mnist_dir, tmp_path):
    args = ["--quick", "--requests", "120", "--hostile", "--hostile-requests", "300"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(trained_run), *args, "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        env=cli_env(mnist_dir),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "web_load.json").read_text())
    assert {"machine", "date", "command", "settings", "configs", "hostile", "checks"} <= set(doc)
    assert doc["checks"] and all(doc["checks"].values())

    # The three default configurations, in order, each running the backend it was asked for.
    got = [(c["backend"], c["workers"]) for c in doc["configs"]]
    assert got == [("torch", 1), ("onnxruntime", 1), ("onnxruntime", 2)]
    for c in doc["configs"]:
        assert {"name", "flags", "repeats", "median", "ratio", "wrk", "server"} <= set(c)
        m = c["median"]
        for key in ("req_s", "p50_ms", "p99_ms", "errors", "conn_errors", "status_5xx"):
            assert key in m
        assert m["req_s"] > 0 and m["p50_ms"] <= m["p99_ms"]
        assert m["status_5xx"] == 0 and m["errors"] == 0 and m["missing_input28"] == 0
        assert m["accuracy"] >= 0.95
        assert c["repeats"][0]["requests"] == 120
        assert c["server"]["exit_code"] == 0  # SIGTERM drained and exited cleanly
        assert c["wrk"] == {"available": False, "skipped": True}  # --quick runs no wrk

    h = doc["hostile"]
    assert h["requests"] == 300 and h["status_5xx"] == 0 and h["conn_errors"] == 0
    assert set(h["kinds"]) == set(STATUS)
    for kind, want in STATUS.items():
        k = h["kinds"][kind]
        assert k["sent"] > 0 and k["got"] == {want: k["sent"]}, (kind, k)
    assert sum(k["sent"] for k in h["kinds"].values()) == 300
    assert h["kinds"]["valid"]["sent"] == 240  # a fifth malformed or slow
    assert h["valid"]["accuracy"] >= 0.95
    for key in ("rss_before_mb", "rss_after_mb", "rss_growth_mb"):
        assert isinstance(h[key], float)
    assert h["rss_before_mb"] > 50  # the server's processes were found, workers included

    md = (tmp_path / "web_load.md").read_text()
    assert "## Hostile mix" in md and "| huge_dims | 10 | 413 | 413: 10 | yes |" in md
    assert all(c["name"] in md for c in doc["configs"])
