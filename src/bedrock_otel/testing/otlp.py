"""A real OTLP receiver on loopback (gRPC and HTTP/protobuf), built on opentelemetry-proto.

It decodes what OTLP exporters send and keeps it, so tests can check names, units, attributes and bucket
boundaries on the wire path itself (exporter configuration, protobuf encoding, resource attributes).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_HTTP_PATHS = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest,
                    metrics_service_pb2.ExportMetricsServiceResponse),
}


def value_of(any_value: AnyValue) -> Any:
    """The Python value of an OTLP AnyValue (strings, numbers, booleans, arrays)."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def attributes_of(key_values: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in key_values}


class OtlpReceiver:
    """Receive OTLP over gRPC (`grpc_endpoint`) and HTTP (`http_endpoint`) on 127.0.0.1. A context manager."""

    def __init__(self, grpc_port: int = 0, http_port: int = 0) -> None:
        """Ports 0 (the default): free ones; a fixed port serves an endpoint that was down before (see
        `BrokenOtlpBackend`'s `down_then_up`)."""
        self._ports = (grpc_port, http_port)
        self._lock = threading.Condition()
        self.trace_requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self._grpc: Any = None
        self._http: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> OtlpReceiver:
        import grpc

        receiver = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:  # the gRPC method name
                receiver._keep(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                receiver._keep(request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        self._grpc = grpc.server(ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._grpc)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"127.0.0.1:{self._ports[0]}")
        self._grpc.start()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                kinds = _HTTP_PATHS.get(self.path)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if kinds is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver._keep(kinds[0].FromString(body))
                reply = kinds[1]().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self._http = ThreadingHTTPServer(("127.0.0.1", self._ports[1]), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, name="otlp-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def _keep(self, request: Any) -> None:
        with self._lock:
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                self.trace_requests.append(request)
            else:
                self.metric_requests.append(request)
            self._lock.notify_all()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until `condition()` holds on what was received (exporters send in the background)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    # -- what was received -------------------------------------------------------------------------------------

    def _received(self, kind: str) -> Iterator[tuple[dict[str, Any], str, Any]]:
        """(resource attributes, scope name, item) for every `spans` or `metrics` item received, oldest first."""
        with self._lock:
            requests = list(self.trace_requests if kind == "spans" else self.metric_requests)
        for request in requests:
            for per_resource in getattr(request, f"resource_{kind}"):
                resource = attributes_of(per_resource.resource.attributes)
                for per_scope in getattr(per_resource, f"scope_{kind}"):
                    for item in getattr(per_scope, kind):
                        yield resource, per_scope.scope.name, item

    def spans(self) -> Iterator[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        return ((resource, span) for resource, _scope, span in self._received("spans"))

    def metrics(self) -> Iterator[tuple[dict[str, Any], str, Any]]:
        """(resource attributes, scope name, metric) for every metric received, oldest first."""
        return self._received("metrics")

    def latest_metric(self, name: str) -> Any:
        """The most recent export of metric `name` (cumulative: it holds the totals), or None."""
        found = None
        for _resource, _scope, metric in self.metrics():
            if metric.name == name:
                found = metric
        return found
