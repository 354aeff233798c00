"""Spreading ``mnistlab compare`` out: ``--jobs`` (parallel processes, fair threads),
``--shard i/n`` (one machine's share) and ``--report DIR...`` (the shards merged), run
as a user runs them, on real MNIST (dry runs: two batches each)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mnistlab.analysis.sweep import fair_threads, parse_shard
from mnistlab.errors import UsageError
from tests.support.cli import run_main

ENTRIES = ["linear", "mlp-small"]
SEEDS = "0,1"


def test_parse_shard():
    assert parse_shard(None) is None
    assert parse_shard("0/1") == (0, 1) and parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "1", "a/b", "-1/2", "1/0", "1/2/3"):
        with pytest.raises(UsageError, match="shard"):
            parse_shard(bad)
    # no shards at all: say that n is wrong, not "from 0 to n-1 (0/0 to -1/0)"
    with pytest.raises(UsageError, match=r"^shard 0/0: n must be 1 or more \(i/n, 0 <= i < n\)$"):
        parse_shard("0/0")


def test_fair_threads_share_the_cores():
    import os

    cores = len(os.sched_getaffinity(0))
    assert fair_threads(1) == cores and fair_threads(cores) == 1
    assert fair_threads(4 * cores) == 1  # never zero


def _compare(*args: str) -> subprocess.CompletedProcess:
    # in this process: what is tested is what the command does (--jobs starts real
    # processes of its own)
    return run_main("compare", *args)


def _accs(folder: Path) -> dict:
    rows = json.loads((folder / "comparison.json").read_text())["rows"]
    return {r["label"]: r["test_accs"] for r in rows}


@pytest.mark.slow
def test_shards_merged_equal_one_machine_running_them_in_parallel(tmp_path):
    whole, s0, s1 = tmp_path / "whole", tmp_path / "s0", tmp_path / "s1"
    common = [*ENTRIES, "--seeds", SEEDS, "--dry-run"]

    proc = _compare(*common, "--jobs", "2", "--out", str(whole))
    assert proc.returncode == 0, proc.stderr
    threads = {
        json.loads((r / "config.json").read_text())["threads"]
        for r in whole.iterdir()
        if r.is_dir()
    }
    assert threads == {fair_threads(2)}  # each of the 2 jobs got its share of the cores

    for i, folder in enumerate((s0, s1)):
        proc = _compare(*common, "--shard", f"{i}/2", "--out", str(folder))
        assert proc.returncode == 0, proc.stderr
        assert f"shard {i}/2: its 2 runs are done" in proc.stdout
        assert not (folder / "comparison.json").exists()  # half a comparison is none
    # every second run from the first, for shard 0: (linear, 0), (mlp-small, 0)
    assert sorted(p.name for p in s0.iterdir() if p.is_dir()) == ["linear-s0", "mlp-small-s0"]
    assert sorted(p.name for p in s1.iterdir() if p.is_dir()) == ["linear-s1", "mlp-small-s1"]

    alone = _compare("--report", str(s0))
    assert alone.returncode == 1 and "2 runs are not finished" in alone.stderr
    assert "linear-s1" in alone.stderr and "Traceback" not in alone.stderr

    merged = tmp_path / "merged"
    proc = _compare("--report", str(s0), str(s1), "--out", str(merged))
    assert proc.returncode == 0, proc.stderr
    got, want = _accs(merged), _accs(whole)
    assert got.keys() == want.keys() == set(ENTRIES)
    for label in ENTRIES:  # the same runs, trained elsewhere: the same accuracies
        assert got[label] == pytest.approx(want[label], abs=0.005)
    assert (merged / "report.html").is_file() and (merged / "accuracy.png").is_file()


@pytest.mark.slow
def test_merging_two_different_comparisons_is_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _compare(*ENTRIES, "--seeds", "0", "--dry-run", "--out", str(a)).returncode == 0
    assert _compare(*ENTRIES, "--seeds", "1", "--dry-run", "--out", str(b)).returncode == 0
    proc = _compare("--report", str(a), str(b))
    assert proc.returncode == 1 and "another comparison" in proc.stderr
    proc = _compare("--report", str(tmp_path))
    assert proc.returncode == 1 and "no suite.json" in proc.stderr


def test_bad_shard_and_jobs_are_usage_errors():
    for args, needle in (
        (["--shard", "2/2"], "--shard"),
        (["--shard", "0/0"], "--shard 0/0: n must be 1 or more"),
        (["--jobs", "0"], "--jobs"),
        (["--report"], "--report takes the comparison folders"),
    ):
        proc = _compare(*(ENTRIES if args[0] != "--report" else []), *args)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
