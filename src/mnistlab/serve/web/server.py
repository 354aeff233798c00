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
import signal
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


def _build(s: ServeSettings):
    from .app import create_app

    if HeaderDeadlineProtocol is not None:
        HeaderDeadlineProtocol.timeout = s.timeout
    # One model thread per worker: a request holds one digit (a number, at most 32), too
    # little to share out, and a second thread only spins, waiting; cores go to workers
    return create_app(s.run, s.device, backend=s.backend, threads=1, timeout=s.timeout)


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


try:  # uvicorn's C-parser protocol, from the web extra's httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # uvicorn falls back to its pure-Python h11 protocol
    HttpToolsProtocol = None

if HttpToolsProtocol is not None:

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol plus what uvicorn lacks: a connection whose
        request line and headers have not all arrived ``timeout`` seconds after they
        began is closed, so trickled headers (slowloris) cannot pile up connections.
        A module-level class, so that uvicorn can hand it to spawned workers; each
        worker sets ``timeout`` from its settings (``app_from_env``)."""

        timeout = 30.0
        _timer = None

        def _arm(self) -> None:
            if self._timer is None:
                self._timer = self.loop.call_later(self.timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _too_slow(self) -> None:
            self._timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()  # until the first request's headers are in

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()  # a later request on a kept-alive connection

        def on_headers_complete(self) -> None:
            self._disarm()  # from here the body has its own deadline (body.read_body)
            super().on_headers_complete()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

else:
    HeaderDeadlineProtocol = None


def _uvicorn_config(app, s: ServeSettings, **extra):
    import uvicorn

    return uvicorn.Config(
        app,
        http=HeaderDeadlineProtocol or "h11",
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
        # uvicorn drains on SIGTERM/SIGINT, then raises the signal again for the handler
        # it found: make that one a no-op, so a graceful stop exits 0, not killed by it
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
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
