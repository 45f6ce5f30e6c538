"""bedrock_otel: OpenTelemetry and Prometheus telemetry for the Anthropic SDK's streams, Bedrock first.

    import bedrock_otel
    bedrock_otel.instrument()            # or: import bedrock_otel.auto

See README.md for settings, metrics and exporters.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .config import ConfigError, Settings
from .exporters.prometheus import MetricsServer, make_asgi_app, make_wsgi_app, start_metrics_server
from .instrumentation import BedrockOtelInstrumentor


def instrument(**kwargs: Any) -> None:
    """Instrument the Anthropic SDK (now, or when it is imported). Idempotent.

    Keyword arguments: `tracer_provider`, `meter_provider`, `registry` (prometheus_client), and any setting of
    `bedrock_otel.config.SETTINGS` (`repair`, `span_events`, ..., `prometheus_port`, `otlp_endpoint`, ...),
    which otherwise come from BEDROCK_OTEL_* and OTEL_* environment variables. Raises `ConfigError` for
    invalid values. Starts the /metrics endpoint and OTLP pipelines the settings ask for.
    """
    BedrockOtelInstrumentor().instrument(**kwargs)


def uninstrument() -> None:
    """Restore every patched attribute and stop recording, including for streams still open."""
    BedrockOtelInstrumentor().uninstrument()


def is_instrumented() -> bool:
    return bool(BedrockOtelInstrumentor().is_instrumented_by_opentelemetry)


def metrics_server() -> MetricsServer | None:
    """The /metrics endpoint `instrument()` started (BEDROCK_OTEL_PROMETHEUS_PORT), if any: `.url`, `.port`."""
    from .instrumentation import _EXPORTERS

    return _EXPORTERS[-1].metrics_server if _EXPORTERS else None


__all__ = [
    "BedrockOtelInstrumentor",
    "ConfigError",
    "MetricsServer",
    "Settings",
    "__version__",
    "instrument",
    "is_instrumented",
    "make_asgi_app",
    "make_wsgi_app",
    "metrics_server",
    "start_metrics_server",
    "uninstrument",
]
