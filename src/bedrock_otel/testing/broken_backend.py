"""A telemetry backend that misbehaves, for OTLP over gRPC and over HTTP: point an exporter at `.endpoint` to see
what an outage of the Collector does to an application.

    with BrokenOtlpBackend("blackhole", "grpc") as backend:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = backend.endpoint

Modes (`MODES`):

- `refuse`: nothing listens; connections are refused.
- `blackhole`: connections are accepted and never answered.
- `slow`: a correct answer, `delay` seconds late.
- `reset`: the request is read, then the connection reset.
- `unavailable`: HTTP 503 with `Retry-After: retry_after`; gRPC UNAVAILABLE with a RetryInfo of that delay.
- `garbage`: the request is read and answered with bytes that are neither HTTP nor HTTP/2.
- `down_then_up`: refused until `up()`, then a real `OtlpReceiver` on the same port (its data: `.receiver`).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .otlp import OtlpReceiver

MODES = ("refuse", "blackhole", "slow", "reset", "unavailable", "garbage", "down_then_up")
PROTOCOLS = ("grpc", "http/protobuf")


class BrokenOtlpBackend:
    """One misbehaving OTLP endpoint on 127.0.0.1. A context manager."""

    def __init__(self, mode: str, protocol: str = "grpc", delay: float = 5.0, retry_after: int = 30) -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; accepted: {', '.join(MODES)}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol={protocol!r}; accepted: {', '.join(PROTOCOLS)}")
        self.mode, self.protocol, self.delay, self.retry_after = mode, protocol, delay, retry_after
        self.receiver: OtlpReceiver | None = None
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._servers: list[Any] = []
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BrokenOtlpBackend:
        if self.mode in ("refuse", "down_then_up"):
            self.port = _unused_port()
        elif self.mode in ("slow", "unavailable"):
            self.port = self._serve_grpc() if self.protocol == "grpc" else self._serve_http()
        else:
            listener = socket.create_server(("127.0.0.1", 0))
            self._sockets.append(listener)
            self.port = listener.getsockname()[1]
            threading.Thread(target=self._accept, args=(listener,), name="broken-otlp", daemon=True).start()
        return self

    def up(self) -> OtlpReceiver:
        """`down_then_up`: start answering, as a healthy receiver."""
        assert self.mode == "down_then_up" and self.receiver is None
        grpc_port, http_port = (self.port, 0) if self.protocol == "grpc" else (0, self.port)
        self.receiver = OtlpReceiver(grpc_port=grpc_port, http_port=http_port).start()
        return self.receiver

    def stop(self) -> None:
        self._closing.set()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        for server in self._servers:
            if isinstance(server, ThreadingHTTPServer):
                _stop_http(server)
            else:
                server.stop(grace=None)
        if self.receiver is not None:
            self.receiver.stop()

    def __enter__(self) -> BrokenOtlpBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- raw TCP: blackhole, reset, garbage -----------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            self._sockets.append(conn)
            threading.Thread(target=self._misbehave, args=(conn,), daemon=True).start()

    def _misbehave(self, conn: socket.socket) -> None:
        try:
            if self.mode == "blackhole":  # read and discard, never answer, until the client gives up
                while not self._closing.is_set() and conn.recv(65536):
                    pass
                return
            conn.settimeout(2)
            conn.recv(65536)
            if self.mode == "garbage":
                conn.sendall(b"\x00\x01garbage, not HTTP\r\n\r\n\xff\xfe")
                time.sleep(0.05)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # with SO_LINGER 0: a reset, not a clean close
        except OSError:
            pass

    # -- protocol servers: slow, unavailable ----------------------------------------------------------------

    def _serve_http(self) -> int:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                if backend.mode == "slow":
                    backend._closing.wait(backend.delay)
                    self.send_response(200)
                    self.send_header("content-type", "application/x-protobuf")
                    self.send_header("content-length", "0")
                else:
                    self.send_response(503)
                    self.send_header("retry-after", str(backend.retry_after))
                    self.send_header("content-length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._servers.append(server)
        threading.Thread(target=server.serve_forever, name="broken-otlp-http", daemon=True).start()
        return int(server.server_address[1])

    def _serve_grpc(self) -> int:
        import grpc
        from google.protobuf.duration_pb2 import Duration
        from google.rpc.error_details_pb2 import RetryInfo
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        backend = self

        def answer(context: Any, response: Any) -> Any:
            if backend.mode == "slow":
                backend._closing.wait(backend.delay)
                return response
            retry = RetryInfo(retry_delay=Duration(seconds=backend.retry_after)).SerializeToString()
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", retry),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "the backend is unavailable")

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:  # the gRPC method name
                return answer(context, trace_service_pb2.ExportTraceServiceResponse())

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                return answer(context, metrics_service_pb2.ExportMetricsServiceResponse())

        server = grpc.server(ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._servers.append(server)
        return int(port)


def _unused_port() -> int:
    """A port nothing listens on (bound and released: connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop_http(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()
