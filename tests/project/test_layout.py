"""The tests' layout mirrors the package's: ``tests/<folder>/`` holds the tests of
``src/mnistlab/<folder>/``, a top-level module's tests sit at the top
(``tests/test_io.py`` for ``_io.py``), and what crosses every folder has a named
place. Files are named for the behaviour they check, never for how they came about.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.processes import REPO

TESTS = REPO / "tests"
PKG = REPO / "src" / "mnistlab"

# what crosses the package's folders, and where it lives
CROSS_CUTTING = {
    "project": "the layout, the architecture, the wheel, installs without torch, stray files",
    "browser": "the drawing page in headless Chromium, drawn on with a mouse",
    "benchmarks": "the scripts in benchmarks/",
    "fuzz": "the harnesses in fuzz/",
    "support": "helpers the tests share (no tests)",
}
# words that say how a test came about, not what it checks
HISTORY = re.compile(
    r"hardening|hostile_pass|regression|issue_?\d|bugfix|round_?\d|pass_?\d|item_?\d"
)


def _test_files() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def _misplaced(files: list[Path], tests: Path, pkg: Path) -> list[str]:
    """Test files whose folder mirrors no package folder and is not a named cross-cutting
    place, or that sit at the top without a top-level module of that name."""
    wrong = []
    for f in files:
        rel = f.relative_to(tests)
        if len(rel.parts) == 1:
            stem = rel.stem.removeprefix("test_")
            if not any((pkg / f"{name}.py").is_file() for name in (stem, f"_{stem}")):
                wrong.append(str(rel))
        elif rel.parts[0] not in CROSS_CUTTING and not pkg.joinpath(*rel.parts[:-1]).is_dir():
            wrong.append(str(rel))
    return wrong


def _history_named(names: list[str]) -> list[str]:
    return [n for n in names if HISTORY.search(n)]


def test_every_test_file_mirrors_a_package_folder_or_a_named_place():
    assert _misplaced(_test_files(), TESTS, PKG) == []


def test_every_package_folder_has_its_tests_folder():
    folders = [p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").is_file()]
    missing = [f for f in folders if not list((TESTS / f).glob("test_*.py"))]
    assert folders and missing == []


def test_no_test_file_or_test_is_named_after_its_history():
    names = [str(f.relative_to(TESTS)) for f in _test_files()]
    tests = [
        m.group(1)
        for f in _test_files()
        for m in re.finditer(r"^\s*def (test_\w+)", f.read_text(encoding="utf-8"), re.M)
    ]
    assert _history_named(names + tests) == []


def test_no_tests_hide_in_the_support_folder():
    assert list((TESTS / "support").rglob("test_*.py")) == []


@pytest.mark.parametrize(
    "name, history",
    [
        ("test_hardening_cli.py", True),
        ("test_hostile_pass.py", True),
        ("test_fuzz_regressions.py", True),
        ("test_issue_15.py", True),
        ("test_second_pass_2.py", True),
        ("test_hostile_images_get_their_4xx", False),
        ("test_predict.py", False),
        ("test_a_truncated_image_is_still_called_corrupt", False),
        ("test_compare_names_a_damaged_last_json", False),
    ],
)
def test_the_history_check_tells_the_names_apart(name, history):
    assert _history_named([name]) == ([name] if history else [])


def test_the_mirror_check_sees_a_misplaced_file(tmp_path):
    pkg, tests = tmp_path / "pkg", tmp_path / "tests"
    (pkg / "data").mkdir(parents=True)
    (pkg / "_io.py").write_text("")
    files = [
        tests / "data" / "test_idx.py",  # mirrors pkg/data/
        tests / "test_io.py",  # mirrors pkg/_io.py
        tests / "browser" / "test_page.py",  # a named cross-cutting place
        tests / "loaders" / "test_x.py",  # no pkg/loaders/
        tests / "test_misc.py",  # no pkg/misc.py
    ]
    assert _misplaced(files, tests, pkg) == ["loaders/test_x.py", "test_misc.py"]
