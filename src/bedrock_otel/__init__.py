"""bedrock_otel: OpenTelemetry and Prometheus telemetry for the Anthropic SDK's streams, Bedrock first.

    import bedrock_otel
    bedrock_otel.instrument()            # or: import bedrock_otel.auto

See README.md for settings, metrics and exporters.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .config import ConfigError, Settings
from .instrumentation import BedrockOtelInstrumentor


def instrument(**kwargs: Any) -> None:
    """Instrument the Anthropic SDK (now, or when it is imported). Idempotent.

    Keyword arguments: `tracer_provider`, `meter_provider`, `registry` (prometheus_client), and the settings
    `repair`, `span_events`, `max_models`, `capture_content`, `content_max_length`, `traces`, `metrics`,
    which otherwise come from BEDROCK_OTEL_* environment variables. Raises `ConfigError` for invalid values.
    """
    BedrockOtelInstrumentor().instrument(**kwargs)


def uninstrument() -> None:
    """Restore every patched attribute and stop recording, including for streams still open."""
    BedrockOtelInstrumentor().uninstrument()


def is_instrumented() -> bool:
    return bool(BedrockOtelInstrumentor().is_instrumented_by_opentelemetry)


__all__ = [
    "BedrockOtelInstrumentor",
    "ConfigError",
    "Settings",
    "__version__",
    "instrument",
    "is_instrumented",
    "uninstrument",
]
