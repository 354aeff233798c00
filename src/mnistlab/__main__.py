"""``python -m mnistlab``: the command line, with Ctrl-C handled from the first line."""

from .cli import run

run()
