"""What leaves the process: the Prometheus endpoint (`prometheus`) and OTLP/console pipelines (`otlp`).

`start()` is called by `instrument()` with the validated settings; `Exporters.close()` by `uninstrument()`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..config import DEFAULT_PROMETHEUS_PORT, ConfigError, Settings
from . import guard
from .otlp import METRICS, Pipelines, build_pipelines, exporters_for
from .otlp import after_fork as reset_pipelines_after_fork
from .prometheus import MetricsServer, start_metrics_server

log = logging.getLogger("bedrock_otel")


@dataclass
class Exporters:
    pipelines: Pipelines
    metrics_server: MetricsServer | None = None

    def release_parent_server(self) -> None:
        """In a forked child: the /metrics server runs in the parent (serve the workers' metrics from there, with
        prometheus_client multiprocess mode); release the child's copy of its socket."""
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None

    def close(self) -> None:
        """Flush what bedrock_otel's own pipelines hold and free the /metrics port."""
        self.pipelines.flush()
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None


def prometheus_port(settings: Settings) -> int | None:
    """The /metrics port asked for: BEDROCK_OTEL_PROMETHEUS_PORT, or 9464 for OTEL_METRICS_EXPORTER=prometheus."""
    if settings.prometheus_port is not None:
        return settings.prometheus_port
    return DEFAULT_PROMETHEUS_PORT if "prometheus" in (settings.metrics_exporter or ()) else None


def check(settings: Settings) -> None:
    """Exporters that cannot get data from the configured recorders are a configuration error."""
    if prometheus_port(settings) is not None and "prometheus" not in settings.metrics:
        raise ConfigError("BEDROCK_OTEL_PROMETHEUS_PORT / prometheus_port needs the prometheus recorder; "
                          "accepted values of BEDROCK_OTEL_METRICS then: a comma list including prometheus")
    if exporters_for(METRICS, settings) and "otel" not in settings.metrics:
        raise ConfigError("OTEL_METRICS_EXPORTER / metrics_exporter needs the otel recorder; accepted values of "
                          "BEDROCK_OTEL_METRICS then: a comma list including otel")


def start(settings: Settings, tracer_provider: Any = None, meter_provider: Any = None,
          registry: Any = None) -> Exporters:
    """Start what `settings` ask for; call `check(settings)` first (instrument() does, before any recording)."""
    exporters = Exporters(build_pipelines(settings, tracer_provider, meter_provider))
    port = prometheus_port(settings)
    if port is not None:
        try:
            exporters.metrics_server = start_metrics_server(port, settings.prometheus_addr, registry)
            log.info("bedrock_otel: serving %s", exporters.metrics_server.url)
        except OSError as exc:  # a busy port must not take the application down; say which setting to change
            log.error("bedrock_otel: cannot serve metrics on %s:%s (BEDROCK_OTEL_PROMETHEUS_PORT): %s",
                      settings.prometheus_addr, port, exc)
    return exporters


__all__ = ["Exporters", "MetricsServer", "check", "guard", "reset_pipelines_after_fork", "start",
           "start_metrics_server"]
