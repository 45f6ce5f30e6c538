"""PromQL built from catalogue instruments: names and label names come from `telemetry.catalog`, never typed."""

from __future__ import annotations

from .. import semconv as sc
from ..telemetry.catalog import INTERNAL_ERRORS, Instrument, prometheus_label

PROVIDER = prometheus_label(sc.PROVIDER)
PLATFORM = prometheus_label(sc.PLATFORM)
MODEL = prometheus_label(sc.REQUEST_MODEL)
REGION = prometheus_label(sc.CLOUD_REGION)
PROFILE = prometheus_label(sc.INFERENCE_PROFILE)
API = prometheus_label(sc.STREAM_API)
JOB, INSTANCE = "job", "instance"

# Grafana template variable -> the label it filters (only on instruments that carry the label).
VARIABLES = {"job": JOB, "provider": PROVIDER, "platform": PLATFORM, "api": API, "model": MODEL, "region": REGION,
             "profile": PROFILE}


def label(attribute: str) -> str:
    return prometheus_label(attribute)


def selector(instrument: Instrument, suffix: str = "", dashboard: bool = False, **match: str) -> str:
    """`name{...}`: exact `match`es by attribute label (`outcome="error"` style, keys are Prometheus labels, values
    may start with `~` for a regex), plus, on dashboards, the template variables for the labels it has."""
    labels = {JOB} | set(instrument.prometheus_labels)
    matchers = []
    if dashboard:
        matchers += [f'{name}=~"${var}"' for var, name in VARIABLES.items() if name in labels]
    for name, value in match.items():
        assert name in labels, f"{instrument.name} has no label {name}"
        matchers.append(f'{name}=~"{value[1:]}"' if value.startswith("~") else f'{name}="{value}"')
    return f"{instrument.prometheus_name}{suffix}{{{', '.join(matchers)}}}" if matchers else \
        instrument.prometheus_name + suffix


def rate(instrument: Instrument, window: str, by: tuple[str, ...] = (), dashboard: bool = False,
         suffix: str = "", **match: str) -> str:
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"sum{grouping} (rate({selector(instrument, suffix, dashboard, **match)}[{window}]))"


def increase(instrument: Instrument, window: str, by: tuple[str, ...] = (), **match: str) -> str:
    """How much a counter grew over `window`, a series that is new within the window counted from 0. bedrock_otel
    (like every Prometheus client and OpenTelemetry exporter) creates a series at its first event, so its first
    sample is already 1 or more, and `increase()` alone ignores a series' first sample: a single malformed start
    event on a new model, or any burst within one scrape on a new label set, would stay at 0. A series absent at
    the window's start (`unless ... offset`) counts its whole value instead."""
    grouping = f" by ({', '.join(by)})" if by else ""
    series = selector(instrument, **match)
    return (f"sum{grouping} ((increase({series}[{window}]) and {series} offset {window}) "
            f"or ({series} unless {series} offset {window}))")


def quantile(q: float, instrument: Instrument, window: str, by: tuple[str, ...] = (), dashboard: bool = False) -> str:
    return (f"histogram_quantile({q}, sum by ({', '.join(('le', *by))}) "
            f"(rate({selector(instrument, '_bucket', dashboard)}[{window}])))")


def ratio(numerator: str, denominator: str) -> str:
    return f"({numerator}) / ({denominator})"


def reporting(window: str) -> str:
    """0 while bedrock_otel is reporting (its self-telemetry counter is exported from the moment it starts), and
    nothing when its telemetry is missing."""
    return f"sum(rate({selector(INTERNAL_ERRORS, dashboard=True)}[{window}])) * 0"


def or_zero(expr: str, window: str) -> str:
    """`expr`, or 0 when it has no series but bedrock_otel is reporting: a panel of errors on a quiet system
    shows 0, a panel whose telemetry is missing stays empty. `or on()` adds the 0 only when `expr` is empty
    (a bare `or vector(0)` would show 0 for missing telemetry and broken queries alike)."""
    return f"{expr} or on() ({reporting(window)})"

