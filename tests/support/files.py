"""Files as a user's editor or a damaged disk leaves them."""

from __future__ import annotations

import json
from pathlib import Path


def edit_json(path: Path, change) -> None:
    """Apply ``change`` (a function that edits the dict in place) to a JSON file."""
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
