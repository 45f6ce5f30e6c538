"""The Prometheus scrape endpoint: a standalone server, or WSGI/ASGI apps to mount in your own web app.

Exposition is `exposition.py`'s (text format, or OpenMetrics when the scraper asks for it): bedrock_otel's own
families rendered natively, the rest of the registry by prometheus_client. With `PROMETHEUS_MULTIPROC_DIR` set
(pre-fork servers), every app here serves the exact sum over all worker processes through
`prometheus_client.multiprocess.MultiProcessCollector`, as prometheus_client renders it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client
from prometheus_client import CollectorRegistry

from ..config import DEFAULT_PROMETHEUS_PORT, ConfigError, Settings
from . import exposition

log = logging.getLogger("bedrock_otel")

METRICS_PATH = "/metrics"
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def exposition_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """What to expose: `registry` if given; else all worker processes' files in multiprocess mode; else the
    default registry bedrock_otel records into."""
    if registry is not None:
        return registry
    if os.environ.get(MULTIPROC_DIR_ENV):
        from prometheus_client import multiprocess

        aggregate = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregate)
        return aggregate
    return prometheus_client.REGISTRY


def make_wsgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """A WSGI app serving the metrics (mount it at /metrics, e.g. with werkzeug's DispatcherMiddleware)."""
    return exposition.wsgi_app(exposition_registry(registry))


def make_asgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """An ASGI app serving the metrics (mount it at /metrics, e.g. `app.mount("/metrics", make_asgi_app())`)."""
    return exposition.asgi_app(exposition_registry(registry))


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's `child_exit` hook: drop a dead worker's live gauges (`anthropic_streams_active`) from the sum.

    In gunicorn.conf.py: `from bedrock_otel.exporters.prometheus import child_exit`.
    """
    if os.environ.get(MULTIPROC_DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


# -- the standalone server ----------------------------------------------------------------------------


MAX_CONNECTIONS = 32  # scrapes in flight at once; more are answered 503 at once instead of queueing threads
IDLE_TIMEOUT_S = 10.0  # a connection that sends nothing for this long is closed (slow clients hold no thread)


def _plain(start_response: Callable[..., Any], status: str, text: str,
           extra: tuple[tuple[str, str], ...] = ()) -> Iterable[bytes]:
    body = text.encode() + b"\n"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), *extra])
    return [body]


def _endpoint_app(metrics_app: Callable[..., Any]) -> Callable[..., Any]:
    """Serve GET/HEAD /metrics only, without a request body: anything else gets a 4xx, so the endpoint exposes
    nothing by accident and reads nothing a client sends."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") not in (METRICS_PATH, METRICS_PATH + "/"):
            return _plain(start_response, "404 Not Found", f"Not found: bedrock_otel serves {METRICS_PATH} only")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", "GET or HEAD only", (("Allow", "GET, HEAD"),))
        if environ.get("CONTENT_LENGTH", "0") not in ("", "0") or environ.get("HTTP_TRANSFER_ENCODING"):
            return _plain(start_response, "413 Content Too Large", "a scrape has no request body")
        if environ["REQUEST_METHOD"] == "HEAD":  # the headers of a GET (prometheus_client answers GET only)
            body = metrics_app({**environ, "REQUEST_METHOD": "GET"}, start_response)
            getattr(body, "close", lambda: None)()
            return [b""]
        return metrics_app(environ, start_response)  # type: ignore[no-any-return]

    return app


class _QuietHandler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT_S  # the socket timeout: the standard library drops the connection when it fires

    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not the application's log lines
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most MAX_CONNECTIONS at once: a flood is shed with 503, never queued."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
                                b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self._slots.release()


class MetricsServer:
    """A running /metrics endpoint. `close()` (or leaving the `with` block) stops it and frees the port."""

    def __init__(self, port: int, addr: str, registry: CollectorRegistry | None) -> None:
        family, sockaddr = _best_family(addr, port)

        class Server(_ThreadingServer):
            address_family = family

        self._httpd = make_server(sockaddr[0], port, _endpoint_app(make_wsgi_app(registry)), Server, _QuietHandler)
        self.addr = sockaddr[0]
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="bedrock-otel-metrics", daemon=True)
        self._thread.start()
        self._pid = os.getpid()

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}{METRICS_PATH}"

    def close(self) -> None:
        if os.getpid() != self._pid:  # a forked child's copy: the server runs in the parent; free our socket only
            self._httpd.server_close()
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetricsServer({self.url})"


def start_metrics_server(port: int = DEFAULT_PROMETHEUS_PORT, addr: str = "127.0.0.1",
                         registry: CollectorRegistry | None = None) -> MetricsServer:
    """Serve /metrics on `addr:port` in a daemon thread and return the handle that stops it.

    Binds to 127.0.0.1 unless you pass another address ("0.0.0.0" for all interfaces). `port=0` picks a free
    port (see `.port`). Raises `ConfigError` for an invalid port or address and `OSError` if it cannot bind.
    """
    settings = Settings.load({"prometheus_port": port, "prometheus_addr": addr}, environ={})
    if settings.prometheus_port is None:
        raise ConfigError(f"prometheus_port={port!r}: start_metrics_server needs a port number 0-65535")
    return MetricsServer(settings.prometheus_port, settings.prometheus_addr, registry)


def _best_family(addr: str, port: int) -> tuple[socket.AddressFamily, Any]:
    """IPv4 or IPv6 by the address, as http.server does it."""
    infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr
