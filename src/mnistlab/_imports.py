"""How mnistlab's modules are imported: quietly, and heavy libraries only when used.

**Quietly.** What the libraries we load may write on their own is settled before any
of them loads.

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

**Lazily.** The names a package exports are imported on first use (PEP 562).

Using a trained model must not load PyTorch: ``mnistlab predict model.onnx`` imports
``mnistlab.models._reject`` (numpy only), and a package's ``__init__`` that imported
every module eagerly would load torch on the way. A package lists its heavy names
instead, ``{name: ".module"}``, and ``lazy_exports`` gives the ``__getattr__`` and
``__dir__`` that load each on first use and keep it, so later lookups are plain.

A lazily exported name must not also be a submodule's name (``fit`` beside
``fit.py``): importing the submodule would bind the module under that name first.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

__all__ = ["LIBRARY_SETTINGS", "lazy_exports", "quiet_libraries"]

# variable -> the value that keeps the library from writing or sending anything
LIBRARY_SETTINGS = {"ORT_DISABLE_TELEMETRY": "1"}


def quiet_libraries() -> None:
    """Set each of ``LIBRARY_SETTINGS`` in ``os.environ`` unless the user already has."""
    for name, value in LIBRARY_SETTINGS.items():
        os.environ.setdefault(name, value)


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``exports`` map each public
    name to the module (relative to the package) that defines it."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)  # once: later lookups do not come here
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
