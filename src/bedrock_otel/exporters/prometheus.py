"""The Prometheus scrape endpoint: a standalone server, or WSGI/ASGI apps to mount in your own web app.

Exposition is prometheus_client's (text format, or OpenMetrics when the scraper asks for it). With
`PROMETHEUS_MULTIPROC_DIR` set (pre-fork servers), every app here serves the exact sum over all worker
processes through `prometheus_client.multiprocess.MultiProcessCollector`.
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
    return prometheus_client.make_wsgi_app(exposition_registry(registry))


def make_asgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """An ASGI app serving the metrics (mount it at /metrics, e.g. `app.mount("/metrics", make_asgi_app())`)."""
    return prometheus_client.make_asgi_app(exposition_registry(registry))


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's `child_exit` hook: drop a dead worker's live gauges (`anthropic_streams_active`) from the sum.

    In gunicorn.conf.py: `from bedrock_otel.exporters.prometheus import child_exit`.
    """
    if os.environ.get(MULTIPROC_DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


# -- the standalone server ----------------------------------------------------------------------------


def _endpoint_app(metrics_app: Callable[..., Any]) -> Callable[..., Any]:
    """Serve /metrics only: anything else is a 404, so the endpoint exposes nothing by accident."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in (METRICS_PATH, METRICS_PATH + "/"):
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        body = b"Not found: bedrock_otel serves " + METRICS_PATH.encode() + b" only\n"
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not the application's log lines
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


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

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}{METRICS_PATH}"

    def close(self) -> None:
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
