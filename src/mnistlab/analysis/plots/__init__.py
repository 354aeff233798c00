"""Pictures as PNG files (matplotlib, Agg): one module per thing looked at."""

from .common import plot_curves, plot_grid, plot_samples, write_curves

__all__ = ["plot_curves", "plot_grid", "plot_samples", "write_curves"]
