"""Files as a user's editor or a damaged disk leaves them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def edit_json(path: Path, change) -> None:
    """Apply ``change`` (a function that edits the dict in place) to a JSON file."""
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of a run folder to damage or edit, without what commands derive from it
    (``eval/``, ``inspect/``): other tests may be writing those into the session's shared
    run, from another process, while this copies it."""
    return Path(shutil.copytree(run, dest, ignore=shutil.ignore_patterns("eval", "inspect")))
