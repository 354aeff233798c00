"""Running the app the way a deployer expects: uvicorn on a socket bound beforehand,
one or several worker processes, access logs on or off, graceful shutdown.

With ``workers > 1`` uvicorn's own supervisor spawns the workers; they share the
listening socket (the kernel spreads connections between them), each builds the
app with ``app_from_env`` from the settings in ``MNISTLAB_SERVE``, and a worker
that dies is replaced. SIGTERM, SIGHUP or Ctrl-C stops taking connections, lets the
requests in flight finish (for up to ``timeout`` seconds), then exits 0.
"""

from __future__ import annotations

import json
import logging.config
import os
import signal
import socket
from copy import deepcopy
from dataclasses import asdict, dataclass

from ...errors import MnistlabError

__all__ = ["ServeSettings", "app_from_env", "run_server"]

ENV = "MNISTLAB_SERVE"
WORKER_PING_S = 60  # seconds a worker may take to answer the supervisor (see _uvicorn_config)


@dataclass
class ServeSettings:
    run: str
    device: str = "cpu"
    workers: int = 1
    timeout: float = 30.0  # seconds for a body to arrive, and for requests to finish at exit
    access_log: bool = False
    backend: str = "auto"
    accept_all: bool = False  # never answer "not a digit"


def _build(s: ServeSettings):
    from .app import create_app

    _Deadlines.timeout = s.timeout
    # One model thread per worker: a request holds one digit (a number, at most 32), too
    # little to share out, and a second thread only spins, waiting; cores go to workers
    return create_app(
        s.run, s.device, backend=s.backend, threads=1, timeout=s.timeout, accept_all=s.accept_all
    )


def app_from_env():
    """The app of one worker process, from the settings its parent left in ``MNISTLAB_SERVE``."""
    _hangup_stops()  # a terminal's hang-up reaches the workers too (one process group)
    return _build(ServeSettings(**json.loads(os.environ[ENV])))


def _hangup_stops() -> None:
    """SIGHUP does what SIGTERM does (drain, then exit) rather than kill the process
    at once: it calls whatever handles SIGTERM when it comes (uvicorn's, once serving)."""

    def hangup(_sig, frame) -> None:
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler):
            handler(signal.SIGTERM, frame)

    signal.signal(signal.SIGHUP, hangup)


def _log_config(access_log: bool) -> dict:
    """uvicorn's logging, quiet but for warnings, plus one line per request if asked."""
    from uvicorn.config import LOGGING_CONFIG

    config = deepcopy(LOGGING_CONFIG)
    for name in ("uvicorn", "uvicorn.error"):
        config["loggers"][name]["level"] = "WARNING"
    config["loggers"]["uvicorn.access"]["level"] = "INFO" if access_log else "WARNING"
    return config


class _Deadlines:
    """What uvicorn lacks, for either of its HTTP protocols: deadlines that close the
    connection. A request's line and headers must all arrive within ``timeout`` seconds
    of their first byte (or of the connection), so trickled headers (slowloris) cannot
    pile up connections; and its body within ``timeout`` seconds of the headers, on
    every path, whether the app reads the body or not (a 404 would otherwise keep
    taking a trickled body). At the body's deadline a request not yet answered gets a
    408, then the connection is closed. Each worker sets ``timeout`` from its
    settings (``_build``); the classes are module-level so that uvicorn can hand them
    to spawned workers."""

    timeout = 30.0
    _timer = None
    _phase = None  # "headers" or "body": what the armed timer is waiting for

    def _arm(self, phase: str) -> None:
        self._disarm()
        self._phase = phase
        self._timer = self.loop.call_later(self.timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._phase = None

    def _expired(self) -> None:
        phase, self._timer, self._phase = self._phase, None, None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if phase == "body" and cycle is not None and not cycle.response_started:
            self._answer_408(cycle)
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's reads end, its answer goes nowhere
            cycle.message_event.set()
        self.transport.close()

    def _answer_408(self, cycle) -> None:
        from .body import too_slow

        body = json.dumps({"error": too_slow(self.timeout)}).encode()
        cycle.response_started = True
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        if self.access_log:  # as uvicorn logs the answers it sends itself
            from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

            scope = cycle.scope
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),
                scope["method"],
                get_path_with_query_string(scope),
                scope["http_version"],
                408,
            )

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm("headers")  # until the first request's headers are in

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


try:  # uvicorn's C-parser protocol, from the web extra's httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # uvicorn falls back to its pure-Python h11 protocol
    HttpToolsProtocol = None

if HttpToolsProtocol is not None:

    class HttpToolsDeadlines(_Deadlines, HttpToolsProtocol):
        """``_Deadlines`` on httptools' parser callbacks."""

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._timer is None:
                self._arm("headers")  # a later request on a kept-alive connection

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._arm("body")

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()


from uvicorn.protocols.http.h11_impl import H11Protocol, h11  # noqa: E402


class H11Deadlines(_Deadlines, H11Protocol):
    """``_Deadlines`` on h11's states, read after each piece of data is parsed."""

    def data_received(self, data: bytes) -> None:
        if self._timer is None and self.conn.their_state is h11.IDLE:
            self._arm("headers")  # a later request on a kept-alive connection
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start the next, pipelined request
        self._follow()

    def _follow(self) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._phase != "body":
            self._arm("body")
        elif state is not h11.IDLE and state is not h11.SEND_BODY:
            self._disarm()  # DONE: the whole request is in


# What every worker speaks: httptools where installed (it costs half as much per request)
PROTOCOL = HttpToolsDeadlines if HttpToolsProtocol is not None else H11Deadlines


def _uvicorn_config(app, s: ServeSettings, **extra):
    import uvicorn

    return uvicorn.Config(
        app,
        http=PROTOCOL,
        loop="auto",  # uvloop where it is installed
        access_log=s.access_log,
        log_config=_log_config(s.access_log),
        log_level=None,
        timeout_graceful_shutdown=max(1, round(s.timeout)),
        # the supervisor kills a worker that does not answer its ping in this many
        # seconds. A worker loading its model (torch, the ONNX graph) on a busy 2-core
        # machine can hold the GIL past uvicorn's 5 s default: killed and restarted, over
        # and over, it never came up. A truly hung worker is replaced a little later.
        timeout_worker_healthcheck=WORKER_PING_S,
        server_header=False,
        **extra,
    )


def run_server(sock: socket.socket, settings: ServeSettings, on_ready=None) -> None:
    """Serve on ``sock`` (bound and listening) until SIGTERM, SIGHUP or Ctrl-C. The model is
    loaded here first in every case, so a bad run folder fails with one line before
    any worker starts; ``on_ready()`` is called once it has loaded."""
    import uvicorn

    if settings.workers == 1:
        server = uvicorn.Server(_uvicorn_config(_build(settings), settings))
        # uvicorn drains on SIGTERM/SIGINT, then raises the signal again for the handler
        # it found: make that one a no-op, so a graceful stop exits 0, not killed by it
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        _hangup_stops()
        if on_ready:
            on_ready()
        server.run(sockets=[sock])
        return
    _check_in_child(settings)  # the workers build their own
    os.environ[ENV] = json.dumps(asdict(settings))
    config = _uvicorn_config(
        f"{__name__}:app_from_env", settings, factory=True, workers=settings.workers
    )
    logging.config.dictConfig(config.log_config)
    if on_ready:
        on_ready()
    _supervisor()(config, sockets=[sock]).run()


def _check_in_child(settings: ServeSettings) -> None:
    """Build the app once in a child process, as each worker will: a bad run folder fails
    with its one line before any worker starts, and the supervisor, which serves nothing,
    never loads the model's libraries (ONNX Runtime, scipy: some 60 MB held for nothing)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        failure = pool.apply(_try_build, (asdict(settings),))
    if failure is not None:
        message, code = failure
        error = MnistlabError(message)
        error.exit_code = code
        raise error


def _try_build(settings: dict) -> tuple[str, int] | None:
    """``_build`` in the checking child: None, or the one line and exit status of its error."""
    try:
        _build(ServeSettings(**settings))
    except MnistlabError as e:
        return e.cli_message(), e.exit_code
    return None


def _supervisor():
    """uvicorn's supervisor, but SIGHUP stops it as SIGTERM does (uvicorn's own restarts
    every worker on SIGHUP, and gives up when a new one is slow to load its model)."""
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        def handle_hup(self) -> None:
            self.handle_term()

    return Supervisor
