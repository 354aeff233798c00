"""``mnistlab compare --report`` merges only shards of one command: the same entries,
seeds and recipe (suite.json records it), every run the one its entry names, and a
suite.json edited by hand refused in one line. Real shard folders (dry runs) made by
the real command line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mnistlab.analysis.compare import parse_entry
from mnistlab.analysis.sweep import write_suite
from mnistlab.cli import main
from tests.support.cli import error_line, run_main

SHARD = ["linear", "mlp-small", "--seeds", "0", "--dry-run"]  # shard 0: linear, 1: mlp-small


def _compare(*args: str) -> subprocess.CompletedProcess:
    # in this process: what is tested is what the command does (--jobs starts real
    # processes of its own)
    return run_main("compare", *args)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict[str, Path]:
    """Shard 0 and shard 1 of one command, and a shard 1 with another recipe."""
    root = tmp_path_factory.mktemp("shards")
    made = {}
    for key, extra in (("s0", ["--shard", "0/2"]), ("s1", ["--shard", "1/2"])):
        made[key] = root / key
        proc = _compare(*SHARD, *extra, "--out", str(made[key]))
        assert proc.returncode == 0, proc.stderr
    made["other"] = root / "other"  # the same runs, but trained on unaugmented images
    args = [*SHARD, "--shard", "1/2", "--augment", "none", "--out", str(made["other"])]
    proc = _compare(*args)
    assert proc.returncode == 0, proc.stderr
    return made


def _copies(shards: dict[str, Path], tmp_path: Path) -> tuple[Path, Path]:
    s0, s1 = tmp_path / "s0", tmp_path / "s1"
    shutil.copytree(shards["s0"], s0)
    shutil.copytree(shards["s1"], s1)
    return s0, s1


@pytest.mark.slow
def test_shards_trained_with_different_recipes_are_not_merged(shards, tmp_path):
    merged = tmp_path / "merged"
    s0, s1, other = (str(shards[k]) for k in ("s0", "s1", "other"))
    line = error_line(_compare("--report", s0, other, "--out", str(merged)), 1)
    assert "another recipe" in line and "augment='none'" in line, line
    assert not (merged / "comparison.json").exists()
    # the shards of one command do merge: it is the recipe that was refused
    proc = _compare("--report", s0, s1, "--out", str(merged))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((merged / "comparison.json").read_text())["rows"]
    assert [(r["label"], r["model"]) for r in rows] == [("linear", "linear"), *[("mlp-small",) * 2]]


@pytest.mark.slow
def test_a_shared_out_refuses_a_shard_with_another_recipe(shards, tmp_path):
    shared = tmp_path / "shared"
    shutil.copytree(shards["s0"], shared)
    suite = (shared / "suite.json").read_text()
    args = [*SHARD, "--shard", "1/2", "--augment", "none", "--out", str(shared)]
    line = error_line(_compare(*args), 2)
    assert "linear-s0 was trained with another recipe" in line, line
    # refused before it trained or rewrote anything
    assert not (shared / "mlp-small-s0").exists() and not (shared / "comparison.json").exists()
    assert (shared / "suite.json").read_text() == suite


@pytest.mark.slow
def test_a_run_of_another_model_in_an_entrys_place_is_refused(shards, tmp_path):
    s0, s1 = _copies(shards, tmp_path)
    shutil.rmtree(s0 / "linear-s0")
    shutil.copytree(s1 / "mlp-small-s0", s0 / "linear-s0")
    line = error_line(_compare("--report", str(s0), str(s1)), 1)
    assert f"{s0 / 'linear-s0'}: trained with another recipe" in line, line
    assert "model='mlp-small'" in line and not (s0 / "comparison.json").exists()
    # its config.json put back too: the checkpoint itself is still another model's
    shutil.copy(shards["s0"] / "linear-s0" / "config.json", s0 / "linear-s0" / "config.json")
    line = error_line(_compare("--report", str(s0), str(s1)), 1)
    assert "best checkpoint is a 'mlp-small' model, not the 'linear'" in line, line
    # a link in the run's place is the run it points to, and checked as one
    shutil.rmtree(s0 / "linear-s0")
    (s0 / "linear-s0").symlink_to(s1 / "mlp-small-s0", target_is_directory=True)
    line = error_line(_compare("--report", str(s0), str(s1)), 1)
    assert "trained with another recipe" in line and "model='mlp-small'" in line, line


@pytest.mark.slow
def test_a_suite_json_naming_a_run_elsewhere_is_refused(shards, tmp_path):
    s0, s1 = _copies(shards, tmp_path)
    elsewhere = str((s1 / "mlp-small-s0").resolve())  # finished, but another entry's run
    for folder in (s0, s1):  # both edited alike, or they would be two comparisons
        doc = json.loads((folder / "suite.json").read_text())
        doc["entries"][0]["runs"] = [elsewhere]
        (folder / "suite.json").write_text(json.dumps(doc))
    line = error_line(_compare("--report", str(s0), str(s1)), 1)
    assert f"{s0 / 'suite.json'}: the runs of entry 'linear'" in line, line
    assert "run that shard's command again" in line and not (s0 / "comparison.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda run: (run / "best.json").unlink(), "best.json is damaged (missing)"),
        (lambda run: (run / "metrics.jsonl").write_text(""), "metrics.jsonl is damaged"),
        (
            lambda run: (run / "metrics.jsonl").write_text('{"type": "epoch", "epoch": 1}\n'),
            "metrics.jsonl is damaged (no epoch records with their times and accuracy)",
        ),
    ],
    ids=["no best.json", "no epochs", "an epoch without its numbers"],
)
def test_a_damaged_run_is_named_in_one_line(damage, needle, shards, tmp_path):
    s0, s1 = _copies(shards, tmp_path)
    damage(s0 / "linear-s0")
    line = error_line(_compare("--report", str(s0), str(s1)), 1)
    assert needle in line and f"delete the folder {s0 / 'linear-s0'}" in line, line


def test_report_on_a_missing_folder_says_so(tmp_path):
    proc = _compare("--report", str(tmp_path / "nope"))
    assert f"{tmp_path / 'nope'}: no such folder" in error_line(proc, 1)


# --- a suite.json edited by hand: one line naming it, what is wrong and what to do ---


@pytest.fixture
def suite_folder(tmp_path) -> Path:
    """A folder with the suite.json of `compare linear mlp-small --seeds 0,1` (no runs)."""
    entries = [parse_entry(e, "shared", None, {"dry_run": True}) for e in ("linear", "mlp-small")]
    names = [[f"{e.label}-s{s}" for s in (0, 1)] for e in entries]
    write_suite(tmp_path, entries, names, [0, 1], None)
    return tmp_path


def _set(path: list, value):
    def edit(doc):
        where = doc
        for key in path[:-1]:
            where = where[key]
        if value is _DELETE:
            del where[path[-1]]
        else:
            where[path[-1]] = value
        return doc

    return edit


_DELETE = object()
EDITS = {
    "a list": lambda doc: [],
    "an empty object": lambda doc: {},
    "entries removed": _set(["entries"], _DELETE),
    "no entries": _set(["entries"], []),
    "one entry": lambda doc: {**doc, "entries": doc["entries"][:1]},
    "an entry twice": lambda doc: {**doc, "entries": [doc["entries"][0]] * 2},
    "entries a string": _set(["entries"], "linear"),
    "an entry a number": _set(["entries", 0], 3),
    "an unknown key": _set(["extra"], 1),
    "an entry's unknown key": _set(["entries", 0, "extra"], 1),
    "a run a number": _set(["entries", 0, "runs", 0], 7),
    "a run a path": _set(["entries", 0, "runs", 0], "/etc"),
    "a run up a folder": _set(["entries", 0, "runs", 0], "../x/linear-s0"),
    "runs a string": _set(["entries", 0, "runs"], "linear-s0"),
    "runs of another seed": _set(["entries", 0, "runs"], ["linear-s0", "linear-s2"]),
    "a label a number": _set(["entries", 0, "label"], 3),
    "an empty label": _set(["entries", 0, "label"], ""),
    "a label too long for a folder": _set(["entries", 0, "label"], "x" * 300),
    "a label across lines": _set(["entries", 0, "label"], "lin\near"),
    "seeds a string": _set(["seeds"], "0,1"),
    "no seeds": _set(["seeds"], []),
    "a seed true": _set(["seeds", 0], True),
    "a seed a float": _set(["seeds", 0], 1e300),
    "a huge seed": _set(["seeds", 0], 10**30),
    "a negative seed": _set(["seeds", 0], -1),
    "a seed twice": _set(["seeds"], [0, 0]),
    "shard a number": _set(["shard"], 5),
    "shard out of range": _set(["shard"], "2/2"),
    "shard 0/0": _set(["shard"], "0/0"),
    "no recipe": _set(["entries", 0, "recipe"], _DELETE),
    "a recipe null": _set(["entries", 0, "recipe"], None),
    "a recipe's unknown setting": _set(["entries", 0, "recipe", "speed"], 1),
    "a recipe's setting removed": _set(["entries", 0, "recipe", "lr"], _DELETE),
    "a recipe's lr a string": _set(["entries", 0, "recipe", "lr"], "fast"),
    "a recipe's huge epochs": _set(["entries", 0, "recipe", "epochs"], 10**40),
    "a recipe's unknown model": _set(["entries", 0, "recipe", "model"], "nope"),
    "a recipe's model a list": _set(["entries", 0, "recipe", "model"], ["linear"]),
    "a recipe's dry_run a string": _set(["entries", 0, "recipe", "dry_run"], "yes"),
}
RAW = {  # what json.dumps cannot write
    "not JSON": b"{entries",
    "not UTF-8": b'{"entries": "\xff"}',
    "a NaN seed": b'{"entries": [], "seeds": [NaN], "shard": null}',
    "a NaN lr": None,  # filled in from the valid suite below
    "a 5000-digit seed": b'{"entries": [], "seeds": [' + b"9" * 5000 + b'], "shard": null}',
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
    "empty": b"",
}


def _fails_on(folder: Path, capsys) -> str:
    assert main(["compare", "--report", str(folder)]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "unexpected" not in err and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_an_edited_suite_json_is_refused_in_one_line(edit, suite_folder, capsys):
    path = suite_folder / "suite.json"
    path.write_text(json.dumps(EDITS[edit](json.loads(path.read_text()))))
    line = _fails_on(suite_folder, capsys)
    assert line.startswith(f"error: {path}: ") and "run that shard's command again" in line, line


@pytest.mark.parametrize("raw", RAW, ids=list(RAW))
def test_a_suite_json_that_is_not_json_of_a_suite_is_refused(raw, suite_folder, capsys):
    path = suite_folder / "suite.json"
    text = RAW[raw]
    if text is None:  # lr NaN: NaN is never equal to itself, so it must not slip through
        text = path.read_bytes().replace(b'"lr": 0.01', b'"lr": NaN', 1)
        assert b"NaN" in text
    path.write_bytes(text)
    line = _fails_on(suite_folder, capsys)
    assert line.startswith(f"error: {path}: ") and "run that shard's command again" in line, line


def test_a_valid_suite_json_gets_past_the_checks(suite_folder, capsys):
    """The edits above are refused for what they change: the file as written is accepted,
    and it is only the missing runs that stop the merge."""
    line = _fails_on(suite_folder, capsys)
    assert "4 runs are not finished" in line, line


def test_a_suite_json_too_large_to_be_one_is_not_read(suite_folder, capsys):
    path = suite_folder / "suite.json"
    with path.open("r+b") as f:  # sparse: 40 MiB on paper, nothing on the disk
        f.truncate(40 * 2**20)
    line = _fails_on(suite_folder, capsys)
    assert f"{path}: larger than any suite.json (41,943,040 bytes)" in line, line
