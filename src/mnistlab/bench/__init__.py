"""``mnistlab bench``: speed measured side by side, written to ``benchmarks/results.md``."""

from .results import SECTIONS, run_bench

__all__ = ["SECTIONS", "run_bench"]
