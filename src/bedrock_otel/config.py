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
TRACE_EXPORTERS = ("otlp", "console")
METRIC_EXPORTERS = ("otlp", "console", "prometheus")
OTLP_PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_PROMETHEUS_PORT = 9464  # the port the OpenTelemetry Prometheus exporter uses by convention
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


def _comma_list(choices: tuple[str, ...], allow_empty: bool = False) -> Callable[[str, Any], Any]:
    """A parser for a comma list of `choices` (or `none`); empty means "not set" (None) when `allow_empty`."""

    def parse(name: str, value: Any) -> tuple[str, ...] | None:
        items = [v.strip().lower() for v in value.split(",")] if isinstance(value, str) else list(value)
        items = [v for v in items if v]
        if allow_empty and not items:
            return None
        if items == ["none"]:
            return ()
        if not items or any(v not in choices for v in items):
            accepted = ", ".join(choices)
            raise ConfigError(f"{name}={value!r} is not valid; accepted values: a comma list of {accepted}, or none")
        return tuple(dict.fromkeys(items))

    return parse


_metric_backends = _comma_list(METRIC_BACKENDS)


def _port(name: str, value: Any) -> int | None:
    """A TCP port; empty or `off` means no endpoint; 0 asks the OS for a free port."""
    text = str(value).strip().lower()
    if text in ("", "off", "none"):
        return None
    if text.isdigit() and 0 <= int(text) <= 65535:
        return int(text)
    raise ConfigError(f"{name}={value!r} is not valid; accepted values: a port number 0-65535, or off")


def _address(name: str, value: Any) -> str:
    """An IP address or host name to bind to (checked here, so a typo fails at start-up, not at bind time)."""
    import ipaddress
    import re

    text = str(value).strip()
    try:
        ipaddress.ip_address(text.strip("[]"))
        return text.strip("[]")
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", text):
        return text
    raise ConfigError(f"{name}={value!r} is not valid; accepted values: an IP address (127.0.0.1, 0.0.0.0, ::1) "
                      "or a host name")


def _protocol(name: str, value: Any) -> str:
    text = str(value).strip().lower()
    if text not in OTLP_PROTOCOLS:
        raise ConfigError(f"{name}={value!r} is not valid; accepted values: {', '.join(OTLP_PROTOCOLS)}")
    return text


def _seconds(name: str, value: Any) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = -1.0
    if 0 <= number <= 3600 and not isinstance(value, bool):
        return number
    raise ConfigError(f"{name}={value!r} is not valid; accepted values: seconds, a number from 0 to 3600 (0.5, 2)")


def _text(name: str, value: Any) -> str | None:
    text = str(value).strip()
    return text or None


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
    Setting("retry", "BEDROCK_OTEL_RETRY", _bool, False,
            "Opt-in: retry a streamed call whose stream opens with a retryable in-band error, under the client's "
            "own retry policy (max_retries, backoff, retry-after, x-should-retry)."),
    Setting("pressure", "BEDROCK_OTEL_PRESSURE", _bool, False,
            "Opt-in: a retry budget and an adaptive send rate per (platform, region, model), so that throttles do "
            "not become a retry storm (see docs/architecture.md, pressure mode)."),
    Setting("pressure_max_wait", "BEDROCK_OTEL_PRESSURE_MAX_WAIT", _seconds, 2.0,
            "Pressure mode: the longest an HTTP attempt waits for its turn; one whose turn is further away is not "
            "sent, and the client raises its throttling error at once."),
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
    # -- exporters (exporters/): what leaves the process ------------------------------------------------
    Setting("prometheus_port", "BEDROCK_OTEL_PROMETHEUS_PORT", _port, None,
            "Serve /metrics on this port (off by default; 9464 is the convention, 0 picks a free port)."),
    Setting("prometheus_addr", "BEDROCK_OTEL_PROMETHEUS_ADDR", _address, "127.0.0.1",
            "Address the /metrics endpoint binds to; 0.0.0.0 (all interfaces) only when you say so."),
    Setting("traces_exporter", "OTEL_TRACES_EXPORTER", _comma_list(TRACE_EXPORTERS, allow_empty=True), None,
            "Span exporters: otlp, console, none. Unset: otlp when an OTLP endpoint is set."),
    Setting("metrics_exporter", "OTEL_METRICS_EXPORTER", _comma_list(METRIC_EXPORTERS, allow_empty=True), None,
            "Metric exporters: otlp, console, prometheus (the /metrics endpoint), none. Unset: otlp when an OTLP "
            "endpoint is set."),
    Setting("otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", _text, None,
            "OTLP endpoint, e.g. http://collector:4317 (gRPC) or http://collector:4318 (HTTP)."),
    Setting("otlp_protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", _protocol, "grpc",
            "OTLP protocol: grpc or http/protobuf (per signal: OTEL_EXPORTER_OTLP_{TRACES,METRICS}_PROTOCOL)."),
    Setting("service_name", "OTEL_SERVICE_NAME", _text, None,
            "service.name of the exported resource (OTEL_RESOURCE_ATTRIBUTES adds more)."),
    Setting("export_exit_timeout", "BEDROCK_OTEL_EXPORT_EXIT_TIMEOUT", _seconds, 0.5,
            "Seconds bedrock_otel's own OTLP pipelines may add to the application's exit (and to uninstrument()) "
            "sending their last telemetry; what is not sent by then is dropped and counted."),
)


def setting(name: str) -> Setting:
    """The declaration of one setting, by name."""
    return next(s for s in SETTINGS if s.name == name)


@dataclass(frozen=True)
class Settings:
    repair: bool = False
    retry: bool = False
    pressure: bool = False
    pressure_max_wait: float = 2.0
    span_events: str = "boundaries"
    max_models: int = 64
    capture_content: bool = False
    content_max_length: int = 4096
    traces: bool = True
    metrics: tuple[str, ...] = METRIC_BACKENDS
    prometheus_port: int | None = None
    prometheus_addr: str = "127.0.0.1"
    traces_exporter: tuple[str, ...] | None = None
    metrics_exporter: tuple[str, ...] | None = None
    otlp_endpoint: str | None = None
    otlp_protocol: str = "grpc"
    service_name: str | None = None
    export_exit_timeout: float = 0.5

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
