"""The package version, in a module of its own so that any module can import it
without importing the package root (which imports most modules)."""

__version__ = "1.0.0"
