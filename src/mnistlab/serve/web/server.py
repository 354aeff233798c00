"""Running the app the way a deployer expects: uvicorn on a socket bound beforehand,
one or several worker processes, access logs on or off, graceful shutdown.

With ``workers > 1`` uvicorn's own supervisor spawns the workers; they share the
listening socket (the kernel spreads connections between them), each builds the
app with ``app_from_env`` from the settings in ``MNISTLAB_SERVE``, and a worker
that dies is replaced. SIGTERM or Ctrl-C stops taking connections, lets the
requests in flight finish (for up to ``timeout`` seconds), then exits.
"""

from __future__ import annotations

import json
import logging.config
import os
import socket
from copy import deepcopy
from dataclasses import asdict, dataclass

__all__ = ["ServeSettings", "app_from_env", "run_server"]

ENV = "MNISTLAB_SERVE"


@dataclass
class ServeSettings:
    run: str
    device: str = "cpu"
    workers: int = 1
    timeout: float = 30.0  # seconds for a body to arrive, and for requests to finish at exit
    access_log: bool = False
    backend: str = "auto"

    def threads(self) -> int:
        """The model's CPU threads in each worker: the cores shared out between workers."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, (cores or 1) // self.workers)


def _build(s: ServeSettings):
    from .app import create_app

    return create_app(s.run, s.device, backend=s.backend, threads=s.threads(), timeout=s.timeout)


def app_from_env():
    """The app of one worker process, from the settings its parent left in ``MNISTLAB_SERVE``."""
    return _build(ServeSettings(**json.loads(os.environ[ENV])))


def _log_config(access_log: bool) -> dict:
    """uvicorn's logging, quiet but for warnings, plus one line per request if asked."""
    from uvicorn.config import LOGGING_CONFIG

    config = deepcopy(LOGGING_CONFIG)
    for name in ("uvicorn", "uvicorn.error"):
        config["loggers"][name]["level"] = "WARNING"
    config["loggers"]["uvicorn.access"]["level"] = "INFO" if access_log else "WARNING"
    return config


def _uvicorn_config(app, s: ServeSettings, **extra):
    import importlib.util

    import uvicorn

    fast = importlib.util.find_spec("httptools") is not None  # C parser, the web extra
    return uvicorn.Config(
        app,
        http="httptools" if fast else "h11",
        loop="auto",  # uvloop where it is installed
        access_log=s.access_log,
        log_config=_log_config(s.access_log),
        log_level=None,
        timeout_graceful_shutdown=max(1, round(s.timeout)),
        server_header=False,
        **extra,
    )


def run_server(sock: socket.socket, settings: ServeSettings, on_ready=None) -> None:
    """Serve on ``sock`` (bound and listening) until SIGTERM or Ctrl-C. The model is
    loaded here first in every case, so a bad run folder fails with one line before
    any worker starts; ``on_ready()`` is called once it has loaded."""
    import uvicorn

    app = _build(settings)
    if settings.workers == 1:
        server = uvicorn.Server(_uvicorn_config(app, settings))
        if on_ready:
            on_ready()
        server.run(sockets=[sock])
        return
    del app  # the workers build their own
    from uvicorn.supervisors import Multiprocess

    os.environ[ENV] = json.dumps(asdict(settings))
    config = _uvicorn_config(
        f"{__name__}:app_from_env", settings, factory=True, workers=settings.workers
    )
    logging.config.dictConfig(config.log_config)
    if on_ready:
        on_ready()
    Multiprocess(config, sockets=[sock]).run()
