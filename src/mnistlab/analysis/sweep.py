"""Spreading a comparison out: its runs in parallel processes (``--jobs``), one
machine's share of them (``--shard i/n``), and the shares merged (``--report``).

A comparison is a fixed list of runs, (entry, seed) in order, each in its own run
folder ``<slug>-s<seed>``. Shard ``i`` of ``n`` takes every n-th run from the i-th
(0-based), so any job launcher (a SLURM array, a Kubernetes indexed job, a shell
loop over ssh) can split a suite: give each task the same command and its own
``--shard``. Each comparison folder holds ``suite.json``, the whole list, so
``mnistlab compare --report DIR...`` can check that every run is somewhere and
write the comparison from all the folders.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from .._io import atomic_write_json, output_folder
from ..errors import MnistlabError, UsageError
from ..runs.folder import is_finished

__all__ = ["SUITE_FILE", "fair_threads", "merge", "parse_shard", "run_parallel", "write_suite"]

SUITE_FILE = "suite.json"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (0 <= i < n) as ``(i, n)``; None for no sharding."""
    if text is None:
        return None
    i, slash, n = text.partition("/")
    if not (slash and i.strip().isdigit() and n.strip().isdigit()):
        raise UsageError(f"write it as i/n, e.g. 0/4, got {text!r}", option="shard")
    i, n = int(i), int(n)
    if not 0 <= i < n:
        raise UsageError(
            f"i must be from 0 to n-1 (0/{n} to {n - 1}/{n}), got {text}", option="shard"
        )
    return i, n


def fair_threads(jobs: int) -> int:
    """Each of ``jobs`` parallel runs gets an equal share of this machine's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // jobs)


def write_suite(out: Path, labels: list[str], names: list[list[str]], seeds: list[int], shard):
    """``suite.json``: every run of the comparison (all shards'), so shards can be merged."""
    doc = {
        "entries": [{"label": x, "runs": r} for x, r in zip(labels, names, strict=True)],
        "seeds": seeds,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
    }
    atomic_write_json(out / SUITE_FILE, doc)


def _train(cfg_dict: dict, resume: str | None) -> tuple[str, bool, float | None]:
    """One run in a worker process: (run name, interrupted, test accuracy)."""
    from ..train import Reporter, TrainConfig, fit

    cfg = TrainConfig(**cfg_dict)
    result = fit(cfg, resume=resume, reporter=Reporter())
    return cfg.run_name, result.interrupted, (result.best or {}).get("test_acc")


def run_parallel(todo: list, jobs: int, log=print) -> bool:
    """Train ``todo`` (``(config, resume folder or None)`` pairs) in ``jobs`` processes at
    once, each on ``fair_threads(jobs)`` threads unless its config says. Ctrl-C reaches
    every worker (one process group): each saves its state and stops, as a single run
    would, and this returns False; the same command resumes them all."""
    threads = fair_threads(jobs)
    stopped = []
    previous = signal.signal(signal.SIGINT, lambda *_: stopped.append(True))  # workers stop
    try:
        context = multiprocessing.get_context("spawn")  # no forked torch state in workers
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = []
            for cfg, resume in todo:
                cfg = dataclasses.replace(cfg, threads=cfg.threads or threads)
                log(f"{cfg.run_name}: {'resuming' if resume else 'training'} {cfg.model}")
                futures.append(pool.submit(_train, dataclasses.asdict(cfg), resume))
            complete = True
            for future in as_completed(futures):
                name, interrupted, acc = future.result()
                complete &= not interrupted
                shown = f"test {acc:.2%}" if isinstance(acc, float) else "stopped"
                log(f"{name}: {'interrupted' if interrupted else 'done'} ({shown})")
    finally:
        signal.signal(signal.SIGINT, previous)
    return complete and not stopped


def merge(folders: list[Path], out: Path | None = None, device: str = "auto", log=print):
    """Write the comparison of the runs spread over ``folders`` (the shards of one
    command) into ``out`` (default: the first folder), once it is checked that they are
    one suite and every run finished in one of them. Returns ``(rows, seeds, out)``."""
    from .._runtime import pick_device
    from .compare import _summarise, write_outputs

    suites = []
    for folder in folders:
        path = Path(folder) / SUITE_FILE
        if not path.is_file():
            raise MnistlabError(f"{folder}: no {SUITE_FILE}; give folders `mnistlab compare` wrote")
        try:
            suites.append(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, UnicodeDecodeError):
            raise MnistlabError(f"{path}: not valid JSON; run that shard again") from None
    first = {k: suites[0].get(k) for k in ("entries", "seeds")}
    for folder, suite in zip(folders[1:], suites[1:], strict=True):
        if {k: suite.get(k) for k in ("entries", "seeds")} != first:
            raise MnistlabError(
                f"{folder} holds another comparison than {folders[0]} "
                "(other entries or seeds); merge the shards of one command only"
            )
    rows, missing = [], []
    for entry in first["entries"]:
        runs = []
        for name in entry["runs"]:
            found = [Path(f) / name for f in folders if is_finished(Path(f) / name)]
            if found:
                runs.append(found[0])
            else:
                missing.append(name)
        rows.append((entry["label"], runs))
    if missing:
        shown = ", ".join(missing[:4]) + (
            f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        )
        raise MnistlabError(
            f"{len(missing)} runs are not finished in any folder given ({shown}); "
            "run their shards, then merge again"
        )
    out = output_folder(out if out is not None else folders[0], option="out")
    log(f"merging {sum(len(r) for _, r in rows)} runs from {len(folders)} folders into {out}")
    dev = pick_device(device)
    rows = [_summarise(label, runs, dev) for label, runs in rows]
    write_outputs(rows, out, first["seeds"])
    return rows, first["seeds"], out
