"""Train several models or recipes over several seeds and compare them side by side.

An *entry* is ``NAME`` or ``NAME:key=value,...``. With ``recipe="shared"`` the
name is a model trained with one shared recipe (``base`` preset plus overrides);
with ``recipe="own"`` it is a preset trained with its own recipe. The ``key=value``
part overrides any training setting for that entry, e.g. ``mlp:loss=ce``.

Every (entry, seed) run gets its own run folder under ``out``. Finished runs are
kept and skipped, an interrupted one is resumed, so the same command continues a
comparison where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .._io import output_folder
from ..errors import UsageError
from ..models import list_models
from ..runs.folder import is_finished, read_config
from ..train import Reporter, TrainConfig, fit
from ..train.config import MAX_SEED
from ..train.presets import PRESETS
from .comparison_files import comparison_table, write_outputs
from .run_rows import check_readable, slug, summarise
from .sweep import entry_recipe, recipe_diff, run_parallel, write_suite

__all__ = [
    "SUITES",
    "Entry",
    "check_entries_and_seeds",
    "compare",
    "comparison_table",
    "parse_entry",
    "slug",
    "write_outputs",
]

SUITES: dict[str, dict] = {
    "seed000": {
        "about": "seed 000's plan: linear vs cnn vs inception vs resnet, one shared budget",
        "entries": ["linear", "cnn", "inception", "resnet"],
        "recipe": "shared",
        "base": "seed000-compare",
    },
    "seed001": {
        "about": "seed 001: mlp-small vs lenet5 (parameters and FLOPs), seed 001's recipe",
        "entries": ["mlp-small", "lenet5"],
        "recipe": "shared",
        "base": "seed001-lenet5",
    },
    "seed002": {
        "about": "seed 002: cross-entropy vs MSE on one-hot, same MLP and recipe",
        "entries": ["mlp:loss=ce", "mlp:loss=mse"],
        "recipe": "shared",
        "base": "seed002-mlp-mse",
    },
    "seed004": {
        "about": "seed 004: LeNet without and with BatchNorm+Dropout, each its own recipe",
        "entries": ["seed004-lenet", "seed004-lenet-bn"],
        "recipe": "own",
        "base": None,
    },
}

_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


@dataclass
class Entry:
    label: str
    config: TrainConfig  # without seed, out_dir and run_name


def _coerce(key: str, value: str):
    if key not in _FIELDS or key in ("seed", "out_dir", "run_name", "model_kwargs"):
        raise UsageError(f"cannot set {key!r} in a compare entry; use a training setting")
    if key == "model":
        raise UsageError("an entry names its model first (mlp:lr=0.1), not with model=")
    default = getattr(TrainConfig(), key)
    floats = ("mean", "std", "beta1")  # the float fields whose default is None
    kind = type(default) if default is not None else (float if key in floats else int)
    try:
        return kind(value) if kind is not bool else value.lower() in ("1", "true", "yes")
    except ValueError:
        raise UsageError(f"{key}={value!r}: expected a {kind.__name__}") from None


def parse_entry(text: str, recipe: str, base: str | None, overrides: dict) -> Entry:
    name, _, extra = text.partition(":")
    local = {}
    for item in filter(None, extra.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"{text!r}: write settings as key=value, e.g. mlp:loss=ce")
        key = key.strip().replace("-", "_")
        if key in local:
            raise UsageError(f"{text!r} sets {key} twice; give each setting once")
        local[key] = _coerce(key, value)
    settings = {**overrides, **local}
    if "epochs" in settings and "steps" not in settings:
        settings["steps"] = None  # whole epochs, whatever step budget a preset had
    if recipe == "own":
        if name not in PRESETS:
            raise UsageError(
                f"own takes presets as entries, and {name!r} is not a preset", option="recipe"
            )
        cfg = TrainConfig.from_preset(name, **settings)
    else:
        if name not in list_models():
            raise UsageError(f"{name!r} is not a model; see `mnistlab models`")
        start = TrainConfig.from_preset(base) if base else TrainConfig()
        cfg = dataclasses.replace(start, **settings, model=name)
    return Entry(text, cfg.validate())


def _check_same_recipe(run_dir: Path, cfg: TrainConfig) -> None:
    """A kept run must have been trained with this entry's recipe, or it would be reused wrongly."""
    shown = recipe_diff(read_config(run_dir), {**entry_recipe(cfg), "seed": cfg.seed})
    if shown:
        raise UsageError(
            f"{run_dir.parent}: its run {run_dir.name} was trained with another recipe "
            f"({shown}); choose another folder, or delete {run_dir.name}",
            option="out",
        )


def _check_kept_runs(out: Path, units: list) -> None:
    """Every run already in ``out`` must be readable and have its entry's recipe."""
    for entry, seed, name in units:
        check_readable(out / name)
        if (out / name / "config.json").is_file():
            _check_same_recipe(out / name, dataclasses.replace(entry.config, seed=seed))


def check_entries_and_seeds(labels: list[str], seeds: list[int]) -> None:
    """At least two entries, each once, and each seed once: a repeat would train
    nothing new but count the same run twice (a spread of zero, from one sample)."""
    if len(labels) < 2:
        raise UsageError("name at least two models (or presets), or a --suite")
    folders = [slug(x) for x in labels]  # two labels with one slug share run folders
    twice = [x for x, f in zip(labels, folders, strict=True) if folders.count(f) > 1]
    if twice:
        raise UsageError(f"{' and '.join(twice)}: the same entry twice; name each entry once")
    if not seeds:
        raise UsageError("needs at least one seed", option="seeds")
    wrong = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if wrong:
        raise UsageError(f"must be between 0 and {MAX_SEED:,}, got {wrong[0]}", option="seeds")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise UsageError(
            f"repeats seed {', '.join(map(str, repeated))}; each seed is one run, "
            "so give each seed once (e.g. --seeds 0,1,2)",
            option="seeds",
        )


def compare(
    entries: list[Entry],
    seeds: list[int],
    out: str | os.PathLike,
    reporter_factory=None,
    log=print,
    jobs: int = 1,
    shard: tuple[int, int] | None = None,
) -> list[dict] | None:
    """Train what is missing, then write comparison.{md,csv,json}, charts and report.html.

    ``jobs``: runs trained at once, in parallel processes (``sweep.run_parallel``);
    ``shard=(i, n)``: train only every n-th run from the i-th, and write the comparison
    only once every run has finished here (else merge the shards' folders with
    ``merge``). Returns the rows, [] for a shard whose comparison is not whole yet, or
    None if a run was interrupted (run the same call again to go on).
    """
    check_entries_and_seeds([e.label for e in entries], seeds)
    out = output_folder(out, option="out")
    names = [[f"{slug(e.label)}-s{seed}" for seed in seeds] for e in entries]
    units = [(e, seed, f"{slug(e.label)}-s{seed}") for e in entries for seed in seeds]
    _check_kept_runs(out, units)  # this shard's and, in a shared --out, the others'
    write_suite(out, entries, names, seeds, shard)  # not before: it would record a wrong recipe
    mine = units[shard[0] :: shard[1]] if shard else units
    todo = []
    for entry, seed, name in mine:
        run_dir = out / name
        cfg = dataclasses.replace(entry.config, seed=seed, out_dir=str(out), run_name=name)
        if is_finished(run_dir):
            log(f"{name}: done already, kept")
            continue
        resume = run_dir if (run_dir / "last.json").is_file() else None
        if run_dir.exists() and resume is None:  # started but never saved a step
            shutil.rmtree(run_dir)
        todo.append((cfg, resume))
    if jobs > 1 and len(todo) > 1:
        if not run_parallel([(c, str(r) if r else None) for c, r in todo], jobs, log):
            return None
    else:
        for cfg, resume in todo:
            log(f"{cfg.run_name}: {'resuming' if resume else 'training'} {cfg.model}")
            reporter = reporter_factory() if reporter_factory else Reporter()
            result = fit(cfg, resume=resume, reporter=reporter)
            reporter.close()
            if result.interrupted:
                return None
    if shard and not all(is_finished(out / name) for _, _, name in units):
        log(f"shard {shard[0]}/{shard[1]}: its {len(mine)} runs are done in {out}")
        return []
    if shard:  # another shard may have finished in this --out since: with this recipe?
        _check_kept_runs(out, units)
    from .._runtime import pick_device

    device = pick_device(entries[0].config.device)
    rows = [
        summarise(e.label, [out / n for n in row], device)
        for e, row in zip(entries, names, strict=True)
    ]
    write_outputs(rows, out, seeds)
    return rows
