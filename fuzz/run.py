"""Run every harness for FUZZ_SECONDS each, one after another, and print a table.

    python fuzz/run.py                       # FUZZ_SECONDS (default 60) per harness
    python fuzz/run.py --seconds 300 image   # just one, longer

Each harness runs as its own process (libFuzzer owns the process and exits it), its
output in ``fuzz/artifacts/NAME.log``. A crash, a hang (an input taking over
``--timeout`` seconds) or an out-of-memory input is written to ``fuzz/artifacts/``
as ``NAME-crash-*`` (``-timeout-``, ``-oom-``), to replay with
``python fuzz/fuzz_NAME.py FILE``; the slowest input each harness met (CPU seconds)
is in the table and in ``fuzz/artifacts/NAME-slowest``. The exit status is 1 if
anything was found.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
HARNESSES = ("idx", "body", "image", "app", "number")
# libFuzzer's token dictionaries: the words a request is made of
DICTS = {"body": "body.dict", "app": "body.dict"}
FINDINGS = ("crash-", "timeout-", "oom-", "leak-")


def _runs(log: str) -> tuple[int, int]:
    """(executions, seconds) from libFuzzer's last words, or from its last status line
    when it stopped early (a crash)."""
    done = re.search(r"Done (\d+) runs in (\d+) second", log)
    if done:
        return int(done[1]), int(done[2])
    status = re.findall(r"^#(\d+)\s", log, re.MULTILINE)
    return (int(status[-1]) if status else 0), 0


def _slowest(log: str) -> float | int | None:
    """The slowest input's time: the harness's own figure (CPU seconds, to the 0.1 ms,
    the last it printed), else libFuzzer's final stat (whole seconds)."""
    timed = re.findall(r"^slowest input so far: ([\d.]+) s", log, re.MULTILINE)
    if timed:
        return float(timed[-1])
    stat = re.search(r"slowest_unit_time_sec:\s*(\d+)", log)
    return int(stat[1]) if stat else None


def run_one(name: str, seconds: int, timeout: int) -> dict:
    ARTIFACTS.mkdir(exist_ok=True)
    flags = [
        f"-max_total_time={seconds}",
        f"-timeout={timeout}",
        f"-artifact_prefix={ARTIFACTS}/{name}-",
        "-print_final_stats=1",
    ]
    if name in DICTS:
        flags.append(f"-dict={HERE / DICTS[name]}")
    before = set(ARTIFACTS.iterdir())
    log_path = ARTIFACTS / f"{name}.log"
    start = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.run(
            [sys.executable, str(HERE / f"fuzz_{name}.py"), *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    wall = time.monotonic() - start
    text = log_path.read_text(errors="replace")
    runs, secs = _runs(text)
    found = sorted(
        p.name for p in set(ARTIFACTS.iterdir()) - before if p.name.startswith(name + "-")
    )
    found = [f for f in found if f.split("-", 1)[1].startswith(FINDINGS)]
    crashes = len(found) or (proc.returncode != 0)  # a harness that failed to start counts
    return {
        "name": name,
        "runs": runs,
        "rate": runs / (secs or wall),
        "crashes": int(crashes),
        "slowest": _slowest(text),
        "found": found,
        "rc": proc.returncode,
        "log": log_path,
    }


def table(results: list[dict]) -> str:
    rows = [
        "| harness | executions | exec/s | crashes | slowest input (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        slowest = r.get("slowest")
        slowest = "?" if slowest is None else f"{slowest:.4f}" if slowest % 1 else slowest
        rows.append(
            f"| {r['name']} | {r['runs']:,} | {r['rate']:,.0f} | {r['crashes']} | {slowest} |"
        )
    total = sum(r["runs"] for r in results)
    rows.append(f"| **total** | **{total:,}** | | **{sum(r['crashes'] for r in results)}** | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("harness", nargs="*", help=f"some of {', '.join(HARNESSES)} (default: all)")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS") or 60))
    parser.add_argument("--timeout", type=int, default=10, help="seconds an input may take")
    args = parser.parse_args(argv)
    unknown = [h for h in args.harness if h not in HARNESSES]
    if unknown:
        parser.error(f"no harness {', '.join(unknown)}; choose from {', '.join(HARNESSES)}")
    results = []
    for name in args.harness or HARNESSES:
        print(f"fuzzing {name} for {args.seconds} s ...", flush=True)
        r = run_one(name, args.seconds, args.timeout)
        results.append(r)
        for f in r["found"]:
            print(f"  found: {ARTIFACTS / f}  (replay: python fuzz/fuzz_{name}.py FILE)")
        if r["crashes"] and not r["found"]:
            print(f"  {name} exited with status {r['rc']}: see {r['log']}")
    print(table(results))
    return 1 if any(r["crashes"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
