"""The ``mnistlab`` command line: a Typer app with one module per command group.

``main(argv)`` runs it and turns every error into one line and an exit status;
``run()`` is the console-script entry point.
"""

from .app import app, main, run

__all__ = ["app", "main", "run"]
