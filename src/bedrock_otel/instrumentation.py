"""`BedrockOtelInstrumentor`: the OpenTelemetry `BaseInstrumentor` entry point, and what it sets up."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from . import exporters, runtime
from . import semconv as sc
from ._version import __version__
from .config import Settings, sdk_disabled
from .hooks.patcher import Patcher
from .observe import live
from .support import SUPPORTED_ANTHROPIC
from .telemetry import catalog

log = logging.getLogger("bedrock_otel")

SCOPE = "bedrock_otel"

PATCHER = Patcher()
_PROMETHEUS_RECORDERS: dict[int, Any] = {}  # one per registry, so counters survive re-instrumenting
_OTEL_RECORDERS: dict[int, Any] = {}  # one per meter provider (instruments cannot be unregistered)
_FEED_STORES: dict[int, Any] = {}  # a fed provider's own store, when there is no Prometheus one to share
_FEEDS: list[Any] = []  # attached to their providers' readers by instrument(), detached by uninstrument()
_EXPORTERS: list[exporters.Exporters] = []  # what instrument() started, for uninstrument() to stop


class BedrockOtelInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the Anthropic SDK's streams. Keyword arguments: `tracer_provider`, `meter_provider`,
    `registry` (a prometheus_client registry) and any setting of `bedrock_otel.config.SETTINGS`."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return (SUPPORTED_ANTHROPIC,)

    def _instrument(self, **kwargs: Any) -> None:
        if sdk_disabled():
            log.info("bedrock_otel: OTEL_SDK_DISABLED=true, not instrumenting")
            return
        tracer_provider = kwargs.pop("tracer_provider", None)
        meter_provider = kwargs.pop("meter_provider", None)
        registry = kwargs.pop("registry", None)
        settings = Settings.load(kwargs)  # raises ConfigError naming the setting
        exporters.check(settings)
        recorders = []
        prometheus = _prometheus_recorder(registry) if "prometheus" in settings.metrics else None
        if prometheus is not None:
            recorders.append(prometheus)
        started = exporters.start(settings, tracer_provider, meter_provider, registry)
        _EXPORTERS.append(started)
        if "otel" in settings.metrics:
            otel = _otel_recorder(started.pipelines.meter_provider, prometheus)
            if otel is not None:
                recorders.append(otel)
        tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=started.pipelines.tracer_provider)
        runtime.ACTIVE = runtime.Runtime(settings, recorders, tracer)
        exporters.guard.on_dropped = _count_export_failed
        PATCHER.apply()

    def _uninstrument(self, **kwargs: Any) -> None:
        runtime.ACTIVE = None
        PATCHER.restore()
        while _FEEDS:
            _FEEDS.pop().close()
        while _EXPORTERS:
            _EXPORTERS.pop().close()


def _count_export_failed(count: int) -> None:
    active = runtime.ACTIVE
    if active is not None:
        active.record([(catalog.TELEMETRY_DROPPED, (sc.DROPPED_EXPORT_FAILED,), count)])


def _after_fork_in_child() -> None:
    """A forked worker (gunicorn with preload, multiprocessing) reports its own streams only: the recorders and
    bedrock_otel-built OTLP pipelines forget the parent's measurements, the pipelines get their own
    service.instance.id and connections, and the parent's /metrics server and open streams stay the parent's.
    Each step runs whatever happened to the one before; forgetting comes first, so a failure is still counted."""
    for step in (_forget_recorded, live.disown_inherited_streams, _release_parent_servers,
                 exporters.reset_pipelines_after_fork, _restart_runtime):
        try:
            step()
        except Exception:
            if runtime.ACTIVE is not None:
                runtime.ACTIVE.internal_error("runtime.fork")
            else:
                log.debug("bedrock_otel: resetting telemetry in a forked process failed", exc_info=True)


def _release_parent_servers() -> None:
    for started in _EXPORTERS:
        started.release_parent_server()


def _forget_recorded() -> None:
    for recorder in (*_PROMETHEUS_RECORDERS.values(), *(cached[1] for cached in _OTEL_RECORDERS.values()),
                     *(cached[1] for cached in _FEED_STORES.values())):
        recorder.forget()


def _restart_runtime() -> None:
    if runtime.ACTIVE is not None:
        provider = _EXPORTERS[-1].pipelines.tracer_provider if _EXPORTERS else None
        runtime.ACTIVE.restart_in_child(trace.get_tracer(SCOPE, __version__, tracer_provider=provider))


if hasattr(os, "register_at_fork"):  # once per process (a module runs once); not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _prometheus_recorder(registry: Any) -> Any:
    from prometheus_client import REGISTRY

    from .telemetry.prometheus import PrometheusRecorder

    registry = REGISTRY if registry is None else registry
    recorder = _PROMETHEUS_RECORDERS.get(id(registry))
    if recorder is None or recorder.registry is not registry:
        recorder = _PROMETHEUS_RECORDERS[id(registry)] = PrometheusRecorder(registry)
    return recorder


def _otel_recorder(meter_provider: Any, prometheus: Any) -> Any:
    """OpenTelemetry metrics: fed to the provider's readers from a native store where the provider allows it
    exactly (`telemetry/otel_feed.py`), the Prometheus recorder's if there is one (then there is nothing more to
    record: None); else recorded point by point through the Metrics API. With no provider set yet, the one the
    application sets later is connected at the first stream end after it."""
    from .telemetry import otel_feed

    provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
    shared = prometheus.native if prometheus is not None else None
    own = None if shared is not None else _feed_store(provider)
    families = shared if shared is not None else own.families  # type: ignore[union-attr]
    if meter_provider is None and not exporters.otlp.global_is_set(exporters.otlp.METRICS):
        return otel_feed.LateFeed(provider, own, lambda late: _feed_or_points(late, families, own))
    return _feed_or_points(provider, families, own)


def _feed_store(provider: Any) -> Any:
    """A fed provider's own store (kept per provider: a later instrument() continues its cumulative totals)."""
    from .telemetry import otel_feed

    cached = _FEED_STORES.get(id(provider))
    if cached is None or cached[0] is not provider:
        cached = _FEED_STORES[id(provider)] = (provider, otel_feed.FeedRecorder())
    return cached[1]


def _feed_or_points(provider: Any, families: Any, own: Any) -> Any:
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from .telemetry import otel_feed
    from .telemetry.otel import OtelRecorder

    why_not = otel_feed.unfeedable(provider, SCOPE)
    if why_not is None:
        feed = otel_feed.Feed(provider, families, InstrumentationScope(SCOPE, __version__))
        feed.attach()
        _FEEDS.append(feed)
        return own
    log.info("bedrock_otel: OpenTelemetry metrics recorded point by point: %s", why_not)
    cached = _OTEL_RECORDERS.get(id(provider))
    if cached is None or cached[0] is not provider:
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=provider)
        cached = _OTEL_RECORDERS[id(provider)] = (provider, OtelRecorder(meter))
    return cached[1]
