"""The web app: a drawing page and a JSON API around one model (``mnistlab[web]``)."""

from .app import create_app

__all__ = ["create_app"]
