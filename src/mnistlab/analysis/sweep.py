"""Spreading a comparison out: its runs in parallel processes (``--jobs``), one
machine's share of them (``--shard i/n``), and the shares merged (``--report``).

A comparison is a fixed list of runs, (entry, seed) in order, each in its own run
folder ``<slug>-s<seed>``. Shard ``i`` of ``n`` takes every n-th run from the i-th
(0-based), so any job launcher (a SLURM array, a Kubernetes indexed job, a shell
loop over ssh) can split a suite: give each task the same command and its own
``--shard``. Each comparison folder holds ``suite.json``, the whole list and each
entry's recipe, so ``mnistlab compare --report DIR...`` can check that the folders are
shards of one command, that every run is somewhere and was trained with its entry's
recipe, and write the comparison from all the folders.
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
from ..runs.folder import is_finished, read_config
from .comparison_files import write_outputs
from .run_rows import check_readable, damaged, slug, summarise

__all__ = [
    "SUITE_FILE",
    "entry_recipe",
    "fair_threads",
    "merge",
    "parse_shard",
    "read_suite",
    "recipe_diff",
    "run_parallel",
    "write_suite",
]

SUITE_FILE = "suite.json"
# suite.json is read whole: a thousand entries of a thousand seeds each are about 23 MB
_MAX_SUITE_BYTES = 32 * 2**20


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (0 <= i < n) as ``(i, n)``; None for no sharding."""
    if text is None:
        return None
    i, slash, n = text.partition("/")
    if not (slash and i.strip().isdigit() and n.strip().isdigit()):
        raise UsageError(f"write it as i/n, e.g. 0/4, got {text!r}", option="shard")
    i, n = int(i), int(n)
    if n < 1:
        raise UsageError(f"{text}: n must be 1 or more (i/n, 0 <= i < n)", option="shard")
    if not 0 <= i < n:
        raise UsageError(
            f"i must be from 0 to n-1 (0/{n} to {n - 1}/{n}), got {text}", option="shard"
        )
    return i, n


def fair_threads(jobs: int) -> int:
    """Each of ``jobs`` parallel runs gets an equal share of this machine's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // jobs)


def entry_recipe(cfg) -> dict:
    """What a run of this entry must have been trained with, but its seed (each run has
    its own); dry_run is a runtime setting, but a dry run must never stand in for a full one.
    """
    return {**{k: v for k, v in cfg.recipe().items() if k != "seed"}, "dry_run": cfg.dry_run}


def recipe_diff(saved: dict, wanted: dict, now: str = "now") -> str:
    """The settings in which ``saved`` differs from ``wanted``, up to three, as
    ``epochs=1 (now 10)``; empty if none does."""
    diff = sorted(k for k in wanted if saved.get(k) != wanted[k])
    return ", ".join(f"{k}={_short(saved.get(k))} ({now} {_short(wanted[k])})" for k in diff[:3])


def write_suite(out: Path, entries: list, names: list[list[str]], seeds: list[int], shard):
    """``suite.json``: every run of the comparison (all shards') and each entry's recipe,
    so that shards can be merged, and only shards of one command."""
    doc = {
        "entries": [
            {"label": e.label, "runs": r, "recipe": entry_recipe(e.config)}
            for e, r in zip(entries, names, strict=True)
        ],
        "seeds": seeds,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
    }
    atomic_write_json(out / SUITE_FILE, doc)


def read_suite(folder: Path) -> dict:
    """``folder``'s suite.json, checked key by key (it may have been edited by hand),
    or a one-line error naming the file, what is wrong and what to do."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "no such folder"
        raise MnistlabError(f"{folder}: {what}; give the folders `mnistlab compare` wrote")
    path = folder / SUITE_FILE
    if not path.is_file():
        raise MnistlabError(f"{folder}: no {SUITE_FILE}; give folders `mnistlab compare` wrote")
    if path.stat().st_size > _MAX_SUITE_BYTES:  # read whole, so not whatever size it has
        doc, problem = None, f"larger than any suite.json ({path.stat().st_size:,} bytes)"
    else:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):  # huge numbers: ValueError
            doc, problem = None, "not valid JSON"
        else:
            problem = _suite_problem(doc)
    if problem:
        raise MnistlabError(
            f"{path}: {problem}; run that shard's command again to rewrite it (its finished "
            f"runs are kept), and do not edit {SUITE_FILE}"
        )
    return doc


def _suite_problem(doc) -> str | None:
    """What is wrong with a suite.json's content, or None: the one place its schema lives."""
    from ..train.config import MAX_SEED

    problem = _keys_problem(doc, {"entries", "seeds", "shard"})
    if problem:
        return f"it {problem}"
    seeds = doc["seeds"]
    whole = isinstance(seeds, list) and all(type(s) is int for s in seeds)
    if not (whole and seeds and all(0 <= s <= MAX_SEED for s in seeds)):
        return f"seeds is not a list of whole numbers from 0 to {MAX_SEED:,}"
    if len(set(seeds)) != len(seeds):
        return "seeds repeats a seed"
    if doc["shard"] is not None:
        try:
            parse_shard(doc["shard"] if isinstance(doc["shard"], str) else "")
        except UsageError:
            return f"shard is {_short(doc['shard'])}, not null or i/n"
    entries = doc["entries"]
    if not isinstance(entries, list) or len(entries) < 2:
        return "entries is not a list of two or more entries"
    slugs = set()
    for i, entry in enumerate(entries):
        problem = _keys_problem(entry, {"label", "runs", "recipe"})
        if problem:
            return f"entry {i} {problem}"
        label = entry["label"]
        if not isinstance(label, str) or not label.strip():
            return f"the label of entry {i} is not a name"
        name = slug(label)
        if len(f"{name}-s{max(seeds)}".encode()) > 255:  # no file system has such names
            return f"the label of entry {i} is too long to name a run folder"
        if name in slugs:
            return f"entry {_short(label)} is there twice"
        slugs.add(name)
        # a run is always <slug>-s<seed> in the shard's folder: never a path elsewhere
        if entry["runs"] != [f"{name}-s{s}" for s in seeds]:
            return f"the runs of entry {_short(label)} are not {_cut(name)}-s<seed>, seed by seed"
        problem = _recipe_problem(entry["recipe"])
        if problem:
            return f"the recipe of entry {_short(label)} {problem}"
    return None


def _keys_problem(doc, keys: set) -> str | None:
    """What is wrong with ``doc`` as a JSON object of exactly ``keys``, or None."""
    if not isinstance(doc, dict):
        return "is not a JSON object"
    if keys - set(doc):
        return f"has no {', '.join(sorted(keys - set(doc)))}"
    if set(doc) - keys:
        return f"has unknown keys ({_cut(', '.join(sorted(set(doc) - keys)))})"
    return None


def _cut(text: str) -> str:
    """``text`` cut to a length a one-line message can hold (a label may be any length)."""
    return text if len(text) <= 60 else text[:57] + "..."


def _short(value) -> str:
    return _cut(repr(value))


def _recipe_problem(recipe) -> str | None:
    from ..models import list_models
    from ..train import TrainConfig

    problem = _keys_problem(recipe, set(entry_recipe(TrainConfig())))
    if problem:
        return problem
    try:
        TrainConfig(**recipe).validate()
    except UsageError as e:
        return f"is not valid ({_cut(str(e))})"
    if recipe["model"] not in list_models():
        return f"names no known model ({_short(recipe['model'])})"
    return None


def _check_run(run: Path, entry: dict, seed: int, suite: Path) -> None:
    """A run found for ``entry`` must be the run its suite.json names: trained with the
    entry's recipe and seed, its best checkpoint a model of the entry's."""
    check_readable(run)
    if not (run / "best.json").is_file():  # finished runs always have one
        raise damaged(run / "best.json", "missing")
    fix = f"delete {run} and run its shard again"
    shown = recipe_diff(read_config(run), {**entry["recipe"], "seed": seed}, now=SUITE_FILE)
    if shown:
        raise MnistlabError(
            f"{run}: trained with another recipe than {suite} gives {_short(entry['label'])} "
            f"({shown}); {fix}"
        )
    best = json.loads((run / "best.json").read_text(encoding="utf-8"))  # readable: checked
    model = best.get("model") if isinstance(best.get("model"), dict) else {}
    if model.get("name") != entry["recipe"]["model"]:
        raise MnistlabError(
            f"{run}: its best checkpoint is a {_short(model.get('name'))} model, not the "
            f"{entry['recipe']['model']!r} of {_short(entry['label'])}; {fix}"
        )


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

    suites = [read_suite(folder) for folder in folders]
    first = suites[0]

    def runs_of(suite):
        return [(e["label"], e["runs"]) for e in suite["entries"]], suite["seeds"]

    for folder, suite in zip(folders[1:], suites[1:], strict=True):
        if runs_of(suite) != runs_of(first):
            raise MnistlabError(
                f"{folder} holds another comparison than {folders[0]} "
                "(other entries or seeds); merge the shards of one command only"
            )
        for mine, theirs in zip(suite["entries"], first["entries"], strict=True):
            shown = recipe_diff(mine["recipe"], theirs["recipe"], now=f"{folders[0]}:")
            if shown:
                raise MnistlabError(
                    f"{folder} was trained with another recipe than {folders[0]} "
                    f"({_short(mine['label'])}: {shown}); merge the shards of one command only "
                    "(run that shard again with the others' options, into a new folder)"
                )
    rows, missing = [], []
    for entry in first["entries"]:
        runs = []
        for name, seed in zip(entry["runs"], first["seeds"], strict=True):
            found = [Path(f) / name for f in folders if is_finished(Path(f) / name)]
            if found:
                _check_run(found[0], entry, seed, Path(folders[0]) / SUITE_FILE)
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
    rows = [summarise(label, runs, dev) for label, runs in rows]
    write_outputs(rows, out, first["seeds"])
    return rows, first["seeds"], out
