"""What the libraries we load may write on their own, settled before any of them loads.

ONNX Runtime (1.17 and later, Linux included) creates, at ``import onnxruntime``, a
persistent device ID and a queue of telemetry events under
``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` and a session file ``$TMPDIR/.ses``.
Its ``disable_telemetry_events()`` comes too late for those files; the environment
variable ``ORT_DISABLE_TELEMETRY=1``, read when the library initialises, prevents the
uploader, the events and the device ID. So it is set as the package is imported, before
any module of ours can import ONNX Runtime, and is inherited by every process we start
(server workers, torchrun ranks). A user who sets the variable keeps their own value.

What stays is only cache, named in docs/reliability.md: matplotlib's font list
(``$MPLCONFIGDIR``, else ``~/.cache/matplotlib``), written by the commands that draw PNGs.
"""

from __future__ import annotations

import os

__all__ = ["LIBRARY_SETTINGS", "quiet_libraries"]

# variable -> the value that keeps the library from writing or sending anything
LIBRARY_SETTINGS = {"ORT_DISABLE_TELEMETRY": "1"}


def quiet_libraries() -> None:
    """Set each of ``LIBRARY_SETTINGS`` in ``os.environ`` unless the user already has."""
    for name, value in LIBRARY_SETTINGS.items():
        os.environ.setdefault(name, value)
