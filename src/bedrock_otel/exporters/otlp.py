"""OTLP (and console) pipelines for spans and metrics, from the standard OTEL_* variables or keyword arguments.

bedrock_otel builds an SDK provider for a signal only when an exporter was asked for (OTEL_*_EXPORTER names
one, or an OTLP endpoint is set) and nobody configured one before: providers passed to `instrument()` and
global providers the application (or `opentelemetry-instrument`) already set are used as they are.
A provider built here becomes the global one, so the SDK's own spans and other instrumentations share it;
it flushes at interpreter exit (the SDK registers the shutdown) and on `uninstrument()`.

A process forked from one that built pipelines (a pre-fork server's worker) must not send the parent's
measurements again, nor share the parent's connections: `after_fork()` gives such a child a fresh start (see
its docstring), and instrument() registers it to run in every forked child.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from opentelemetry import metrics, trace
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
)

from ..config import Settings, setting
from . import guard

log = logging.getLogger("bedrock_otel")

TRACES, METRICS = "traces", "metrics"
_SIGNAL_ENV = {
    TRACES: (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL),
    METRICS: (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, OTEL_EXPORTER_OTLP_METRICS_PROTOCOL),
}
# the exporter class for (signal, exporter name, protocol): module and class, imported only when used
_EXPORTER_CLASSES = {
    (TRACES, "otlp", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    (TRACES, "otlp", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    (TRACES, "console", ""): ("opentelemetry.sdk.trace.export", "ConsoleSpanExporter"),
    (METRICS, "otlp", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
    (METRICS, "otlp", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http.metric_exporter",
                                         "OTLPMetricExporter"),
    (METRICS, "console", ""): ("opentelemetry.sdk.metrics.export", "ConsoleMetricExporter"),
}


@dataclass
class Pipelines:
    """The providers bedrock_otel records into (None: the global ones) and those it built itself."""

    tracer_provider: Any = None
    meter_provider: Any = None
    owned: list[Any] = field(default_factory=list)

    def flush(self) -> None:
        """Send what the pipelines bedrock_otel built hold, waiting at most BEDROCK_OTEL_EXPORT_EXIT_TIMEOUT."""
        guard.within("force_flush", self.owned, _guards(), _EXIT_TIMEOUT[0])


_BUILT: dict[str, Any] = {}  # signal -> provider built by bedrock_otel (global, so built once per process)
_BUILT_EXPORTERS: dict[str, list[_Reopenable]] = {}  # signal -> the exporters of that provider
_EXIT_TIMEOUT = [0.5]  # BEDROCK_OTEL_EXPORT_EXIT_TIMEOUT of the instrument() that built them


def _guards() -> list[guard.Guard]:
    return [exporter.guard for exporters in _BUILT_EXPORTERS.values() for exporter in exporters]


def _shutdown_at_exit() -> None:
    """The providers bedrock_otel built are shut down here, not by the SDK's own exit hook: within the bound."""
    guard.within("shutdown", list(_BUILT.values()), _guards(), _EXIT_TIMEOUT[0])


def exporters_for(signal: str, settings: Settings, environ: Any = None) -> tuple[str, ...]:
    """The exporters asked for a signal: OTEL_*_EXPORTER / kwarg, else otlp when an endpoint is set."""
    environ = os.environ if environ is None else environ
    chosen = settings.traces_exporter if signal == TRACES else settings.metrics_exporter
    if chosen is None:
        endpoint_env = _SIGNAL_ENV[signal][0]
        chosen = ("otlp",) if settings.otlp_endpoint or environ.get(endpoint_env) else ()
    return tuple(name for name in chosen if name != "prometheus")  # prometheus: the /metrics endpoint


def protocol_for(signal: str, settings: Settings, environ: Any = None) -> str:
    environ = os.environ if environ is None else environ
    env = _SIGNAL_ENV[signal][1]
    return setting("otlp_protocol").parse(env, environ[env]) if environ.get(env) else settings.otlp_protocol


def endpoint_for(signal: str, protocol: str, settings: Settings, environ: Any = None) -> str | None:
    """An explicit endpoint for the exporter, or None to let it read OTEL_EXPORTER_OTLP_*_ENDPOINT itself."""
    environ = os.environ if environ is None else environ
    if environ.get(_SIGNAL_ENV[signal][0]) or not settings.otlp_endpoint:
        return None
    base = settings.otlp_endpoint.rstrip("/")
    return f"{base}/v1/{signal}" if protocol == "http/protobuf" else base


def probe(signal: str, settings: Settings, timeout_s: float = 2.0) -> tuple[str, bool, float, str]:
    """Send the signal's OTLP endpoint an empty export request, as its exporter would: (where, whether it
    answered with success, seconds taken, what went wrong)."""
    protocol = protocol_for(signal, settings)
    url = endpoint_for(signal, protocol, settings) or os.environ.get(_SIGNAL_ENV[signal][0]) \
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") \
        or ("http://localhost:4317" if protocol == "grpc" else "http://localhost:4318")
    started = time.perf_counter()
    try:
        if protocol == "grpc":
            _probe_grpc(signal, url, timeout_s)
        else:
            if not os.environ.get(_SIGNAL_ENV[signal][0]) and not url.rstrip("/").endswith(f"/v1/{signal}"):
                url = f"{url.rstrip('/')}/v1/{signal}"  # what the exporter appends to OTEL_EXPORTER_OTLP_ENDPOINT
            _probe_http(url, timeout_s)
        return url, True, time.perf_counter() - started, ""
    except Exception as exc:
        detail = getattr(exc, "details", None)
        code = getattr(exc, "code", None)
        reason = f"{code()}: {detail()}" if callable(detail) and callable(code) else f"{type(exc).__name__}: {exc}"
        return url, False, time.perf_counter() - started, reason


def _probe_grpc(signal: str, url: str, timeout_s: float) -> None:
    from urllib.parse import urlparse

    import grpc
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    parsed = urlparse(url if "://" in url else f"http://{url}")
    target = f"{parsed.hostname}:{parsed.port or 4317}"
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if parsed.scheme == "https" \
        else grpc.insecure_channel(target)
    with channel:
        if signal == TRACES:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_service_pb2.ExportTraceServiceRequest(),
                                                                    timeout=timeout_s)
        else:
            metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(
                metrics_service_pb2.ExportMetricsServiceRequest(), timeout=timeout_s)


def _probe_http(url: str, timeout_s: float) -> None:
    import urllib.request

    request = urllib.request.Request(url, data=b"", method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # raises for 4xx and 5xx
        response.read()


def global_is_set(signal: str) -> bool:
    """Whether the application (or a distro) already installed a global provider for the signal."""
    provider = trace.get_tracer_provider() if signal == TRACES else metrics.get_meter_provider()
    return type(provider).__name__ not in ("ProxyTracerProvider", "_ProxyMeterProvider")


def build_pipelines(settings: Settings, tracer_provider: Any = None, meter_provider: Any = None) -> Pipelines:
    pipelines = Pipelines(tracer_provider, meter_provider)
    _EXIT_TIMEOUT[0] = settings.export_exit_timeout
    for signal, given in ((TRACES, tracer_provider), (METRICS, meter_provider)):
        names = exporters_for(signal, settings)
        if given is not None or not names:
            continue
        provider = _BUILT.get(signal)
        if provider is None:
            if global_is_set(signal):
                log.info("bedrock_otel: using the application's global %s provider; not adding exporters", signal)
                continue
            provider = _BUILT[signal] = _build(signal, names, settings)
            (trace.set_tracer_provider if signal == TRACES else metrics.set_meter_provider)(provider)
        pipelines.owned.append(provider)
    return pipelines


def describe(settings: Settings) -> dict[str, str]:
    """One line per signal saying where it goes (for `bedrock-otel doctor`)."""
    lines = {}
    for signal in (TRACES, METRICS):
        names = exporters_for(signal, settings)
        parts = []
        for name in names:
            if name == "otlp":
                protocol = protocol_for(signal, settings)
                endpoint = endpoint_for(signal, protocol, settings) or os.environ.get(_SIGNAL_ENV[signal][0])
                parts.append(f"otlp ({protocol}) to {endpoint or 'the exporter default (localhost)'}")
            else:
                parts.append(name)
        if names and global_is_set(signal) and signal not in _BUILT:
            parts.append("(the application's global provider is used instead)")
        lines[signal] = ", ".join(parts) or "not exported (no exporter asked for)"
    return lines


def resource(settings: Settings) -> Any:
    """service.name from the setting, OTEL_RESOURCE_ATTRIBUTES, and a service.instance.id per process (so
    cumulative series from several workers stay apart), which OTEL_RESOURCE_ATTRIBUTES may override."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    detected = Resource.create({SERVICE_NAME: settings.service_name} if settings.service_name else {})
    return _instance().merge(detected)


_INSTANCE_ID: list[str] = []  # this process's service.instance.id, shared by its trace and metric pipelines


def _instance(new: bool = False) -> Any:
    from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, Resource

    if new or not _INSTANCE_ID:
        _INSTANCE_ID[:] = [str(uuid.uuid4())]
    return Resource({SERVICE_INSTANCE_ID: _INSTANCE_ID[0]})


class _Reopenable:
    """A span or metric exporter (by duck typing, as the SDK's processors and readers use them) delegating to one
    that a forked child replaces by a new one: the parent's connections (a requests session's pooled sockets, a
    gRPC channel) are not the child's to write to. Its exports go through a `guard.Guard` (circuit breaker,
    quiet logs, drops counted)."""

    def __init__(self, factory: Callable[[], Any], signal: str = TRACES, endpoint: str = "") -> None:
        self._factory = factory
        self.exporter = factory()
        self.guard = guard.Guard(signal, endpoint)
        self._failure = _failure_result(signal)
        # what PeriodicExportingMetricReader reads from a metric exporter: the wrapped one's preferences
        self._preferred_temporality = getattr(self.exporter, "_preferred_temporality", None)
        self._preferred_aggregation = getattr(self.exporter, "_preferred_aggregation", None)

    def reopen(self) -> None:
        self.exporter = self._factory()  # the parent's is dropped unclosed: closing it could touch shared state
        self.guard = guard.Guard(self.guard.signal, self.guard.endpoint)  # the child's own outage state

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        return self.guard.export(lambda b: self.exporter.export(b, *args, **kwargs), batch, self._failure)

    def force_flush(self, *args: Any, **kwargs: Any) -> Any:
        return self.exporter.force_flush(*args, **kwargs)

    def shutdown(self, *args: Any, **kwargs: Any) -> Any:
        return self.exporter.shutdown(*args, **kwargs)


def _failure_result(signal: str) -> Any:
    if signal == TRACES:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.FAILURE
    from opentelemetry.sdk.metrics.export import MetricExportResult

    return MetricExportResult.FAILURE


def _endpoint_name(signal: str, name: str, settings: Settings) -> str:
    """Where an exporter sends, for messages: `otlp (grpc) http://collector:4317`."""
    if name != "otlp":
        return name
    protocol = protocol_for(signal, settings)
    endpoint = endpoint_for(signal, protocol, settings) or os.environ.get(_SIGNAL_ENV[signal][0]) \
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "the exporter default (localhost)"
    return f"{endpoint} (OTLP {protocol})"


def _reopenable(signal: str, name: str, settings: Settings) -> _Reopenable:
    exporter = _Reopenable(lambda: _exporter(signal, name, settings), signal, _endpoint_name(signal, name, settings))
    _BUILT_EXPORTERS.setdefault(signal, []).append(exporter)
    return exporter


def _exporter(signal: str, name: str, settings: Settings) -> Any:
    import importlib

    protocol = protocol_for(signal, settings) if name == "otlp" else ""
    module_name, class_name = _EXPORTER_CLASSES[(signal, name, protocol)]
    cls = getattr(importlib.import_module(module_name), class_name)
    endpoint = endpoint_for(signal, protocol, settings) if name == "otlp" else None
    return cls(endpoint=endpoint) if endpoint else cls()


def _build(signal: str, names: tuple[str, ...], settings: Settings) -> Any:
    if signal == TRACES:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource(settings), shutdown_on_exit=False)
        for name in names:
            provider.add_span_processor(BatchSpanProcessor(_reopenable(signal, name, settings)))
    else:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers = [PeriodicExportingMetricReader(_reopenable(signal, name, settings)) for name in names]
        provider = MeterProvider(resource=resource(settings), metric_readers=readers, shutdown_on_exit=False)
    guard.quiet_exporter_logs()
    guard.RUNNER.start()  # now: no thread can start when the interpreter exits (Python >= 3.12)
    if not _BUILT:
        atexit.register(_shutdown_at_exit)  # the first provider built; the others are in _BUILT by exit time
    return provider


def after_fork() -> None:
    """In a forked child: the pipelines bedrock_otel built get a new service.instance.id, new exporters, and
    (metrics) none of the measurements the parent had made, so the child reports only its own. The OpenTelemetry
    SDK restarts its export threads itself and drops queued spans, but copies the metric state and the resource.

    Resetting that state reaches into the SDK (checked from opentelemetry-sdk 1.27 to 1.45); if an SDK version
    lacks what it touches, the child's bedrock_otel-built metric pipeline stops exporting rather than send the
    parent's totals as its own, and says so in a warning."""
    instance = _instance(new=True)
    if _BUILT:
        guard.OUTAGE.forget()
        guard.RUNNER.start()
    for signal, provider in _BUILT.items():
        exporters = _BUILT_EXPORTERS.get(signal, [])
        if signal == METRICS:
            try:
                _forget_measurements(provider)
            except Exception:
                log.warning("bedrock_otel: opentelemetry-sdk %s cannot be reset in a forked process; this process "
                            "exports no OTLP metrics (build the pipeline after fork, e.g. in gunicorn's post_fork, "
                            "to export them)", _sdk_version(), exc_info=True)
                for exporter in exporters:
                    exporter.exporter = _Discard()
                continue
        _merge_resource(provider, instance)
        for exporter in exporters:
            exporter.reopen()


def _merge_resource(provider: Any, instance: Any) -> None:
    """The provider's resource with `instance` taking precedence: the SDK's own after-fork update where it has one
    (TracerProvider from about 1.44, tracers included); else the attribute itself, and the resource of each tracer
    the provider cached (1.33 to 1.43 cache them, each with the resource it was made with)."""
    if hasattr(provider, "_update_resource"):
        provider._update_resource(instance)
    elif hasattr(provider, "_sdk_config"):
        provider._sdk_config.resource = provider._sdk_config.resource.merge(instance)
    else:
        provider._resource = provider._resource.merge(instance)
        for tracer in getattr(provider, "_tracers", {}).values():
            tracer.resource = provider._resource


def _forget_measurements(provider: Any) -> None:
    """Empty the per-reader storage of a MeterProvider (aggregations are rebuilt on the next measurement), with
    fresh locks: a thread of the parent may have held one at fork, and it does not exist here to release it."""
    consumer = provider._measurement_consumer
    storages = list(consumer._reader_storages.values())
    for storage in storages:  # check every storage before changing any
        if not isinstance(storage._instrument_view_instrument_matches, dict):
            raise TypeError(type(storage._instrument_view_instrument_matches))
    consumer._lock = threading.Lock()
    for storage in storages:
        storage._lock = threading.RLock()
        storage._instrument_view_instrument_matches = {}


class _Discard:
    """An exporter that drops everything (a child whose SDK cannot be reset must not resend the parent's data)."""

    def export(self, *args: Any, **kwargs: Any) -> Any:
        from opentelemetry.sdk.metrics.export import MetricExportResult

        return MetricExportResult.SUCCESS

    def force_flush(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        return None


def _sdk_version() -> str:
    from opentelemetry.sdk.version import __version__

    return str(__version__)
