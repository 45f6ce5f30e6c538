"""Settings from keyword arguments and BEDROCK_OTEL_* environment variables, validated at start-up.

Each setting is declared once in `SETTINGS` (name, environment variable, parser, default, help), so the
documentation table, the error messages and the parsing all come from the same place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Callable

SPAN_EVENT_MODES = ("none", "errors", "boundaries", "all")
METRIC_BACKENDS = ("prometheus", "otel")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class ConfigError(ValueError):
    """An invalid setting; the message names the setting and the accepted values."""


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean; accepted values: {', '.join(_TRUE + _FALSE[:-1])}")


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, bool):
        try:
            number = int(str(value).strip())
        except ValueError:
            number = 0
        if number >= 1:
            return number
    raise ConfigError(f"{name}={value!r} is not valid; accepted values: a whole number >= 1")


def _span_events(name: str, value: Any) -> str:
    text = str(value).strip().lower()
    if text not in SPAN_EVENT_MODES:
        raise ConfigError(f"{name}={value!r} is not valid; accepted values: {', '.join(SPAN_EVENT_MODES)}")
    return text


def _metric_backends(name: str, value: Any) -> tuple[str, ...]:
    items = [v.strip().lower() for v in value.split(",")] if isinstance(value, str) else list(value)
    items = [v for v in items if v]
    if items == ["none"]:
        return ()
    bad = [v for v in items if v not in METRIC_BACKENDS]
    if bad or not items:
        accepted = ", ".join(METRIC_BACKENDS)
        raise ConfigError(f"{name}={value!r} is not valid; accepted values: a comma list of {accepted}, or none")
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    parse: Callable[[str, Any], Any]
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("repair", "BEDROCK_OTEL_REPAIR", _bool, False,
            "Opt-in: raise the matching SDK exception for in-band errors and drop masquerading chunks."),
    Setting("span_events", "BEDROCK_OTEL_SPAN_EVENTS", _span_events, "boundaries",
            "Span events: none, errors, boundaries (all but content_block_delta and ping), all."),
    Setting("max_models", "BEDROCK_OTEL_MAX_MODELS", _positive_int, 64,
            "Distinct gen_ai.request.model values per process before new ones become _OTHER."),
    Setting("capture_content", "BEDROCK_OTEL_CAPTURE_CONTENT", _bool, False,
            "Record prompt and completion text on spans (off: no content anywhere)."),
    Setting("content_max_length", "BEDROCK_OTEL_CONTENT_MAX_LENGTH", _positive_int, 4096,
            "Characters of captured content kept per attribute when content capture is on."),
    Setting("traces", "BEDROCK_OTEL_TRACES", _bool, True, "Emit one CLIENT span per streamed call."),
    Setting("metrics", "BEDROCK_OTEL_METRICS", _metric_backends, METRIC_BACKENDS,
            "Metric recorders: prometheus (prometheus_client), otel (OpenTelemetry Metrics API), or none."),
)


@dataclass(frozen=True)
class Settings:
    repair: bool = False
    span_events: str = "boundaries"
    max_models: int = 64
    capture_content: bool = False
    content_max_length: int = 4096
    traces: bool = True
    metrics: tuple[str, ...] = METRIC_BACKENDS

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Keyword arguments win over the environment, which wins over defaults; all are validated."""
        overrides = dict(overrides or {})
        environ = os.environ if environ is None else environ
        known = {s.name for s in SETTINGS}
        unknown = sorted(k for k in overrides if k not in known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; accepted settings: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            if overrides.get(setting.name) is not None:
                values[setting.name] = setting.parse(setting.name, overrides[setting.name])
            elif setting.env in environ:
                values[setting.name] = setting.parse(setting.env, environ[setting.env])
            else:
                values[setting.name] = setting.default
        return cls(**values)


def sdk_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """OTEL_SDK_DISABLED=true turns bedrock_otel into a no-op, as it does the OpenTelemetry SDK."""
    environ = os.environ if environ is None else environ
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


assert {f.name for f in fields(Settings)} == {s.name for s in SETTINGS}
