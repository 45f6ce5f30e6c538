"""Shared fixtures: one loopback server per session; telemetry readers keyed by catalogue instruments."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

# The OTLP receivers run gRPC servers in the test process, which starts a child for every subprocess test. On
# Python 3.9 `subprocess` forks (3.10+ uses vfork, which runs no fork handlers), and with gRPC's fork handlers on
# (grpcio's default) grpcio 1.80, the newest for 3.9, aborts about 1 such child in 100 before it reaches exec
# ("epoll_wait error: Bad file descriptor") when another thread is inside gRPC. This process never uses gRPC in a
# forked child, so the handlers are off here; `procs.child_env` gives children grpcio's default back (test_fork's
# workers need it).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

sys.path.insert(0, str(Path(__file__).parent))

from bedrock_otel.telemetry import catalog


@pytest.fixture(autouse=True)
def _uninstrumented_after() -> Any:
    yield
    import bedrock_otel

    if bedrock_otel.is_instrumented():
        bedrock_otel.uninstrument()


def by_label(telemetry: Any, instrument: catalog.Instrument, *label_attributes: str, suffix: str = "",
             **match: str) -> dict[Any, float]:
    """Prometheus samples of `instrument`, summed by the given labels, restricted to `match`."""
    name = instrument.prometheus_name + suffix
    keys = [catalog.prometheus_label(a) for a in label_attributes]
    totals: dict[Any, float] = {}
    for labels, value in telemetry.samples(name).items():
        labels = dict(labels)
        if all(labels.get(k) == v for k, v in match.items()) and value:
            key = tuple(labels[k] for k in keys)
            key = key[0] if len(key) == 1 else key
            totals[key] = totals.get(key, 0) + value
    return totals


def as_prometheus_samples(instrument: catalog.Instrument, points: Any) -> dict[tuple[str, tuple[Any, ...]], float]:
    """OpenTelemetry points of one family (the SDK's data classes, or OTLP's protobuf) as the Prometheus samples
    the same numbers make: {(sample name, sorted label pairs): value}, every bucket of every histogram."""
    from itertools import accumulate

    from prometheus_client.utils import floatToGoString

    from bedrock_otel.testing.otlp import attributes_of

    name, out = instrument.prometheus_name, {}
    for point in points:
        attributes = point.attributes if isinstance(point.attributes, dict) else attributes_of(point.attributes)
        labels = tuple(sorted(zip(instrument.prometheus_labels,
                                  (str(attributes.get(a, "")) for a in instrument.attributes))))
        if instrument.kind is catalog.Kind.HISTOGRAM:
            bounds = [*map(floatToGoString, instrument.buckets or ()), "+Inf"]
            for le, count in zip(bounds, accumulate(point.bucket_counts)):
                out[name + "_bucket", tuple(sorted((*labels, ("le", le))))] = float(count)
            out[name + "_count", labels] = float(point.count)
            out[name + "_sum", labels] = point.sum
        else:
            value = point.value if hasattr(point, "value") else getattr(point, point.WhichOneof("value"))
            out[name, labels] = float(value)
    return out


def prometheus_samples(families: Any, instrument: catalog.Instrument) -> dict[tuple[str, tuple[Any, ...]], float]:
    """The Prometheus samples of one family (`_created` aside), from prometheus_client's metric families."""
    stem = instrument.prometheus_name.removesuffix("_total")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families
            if family.name == stem for s in family.samples if not s.name.endswith("_created")}


def same_numbers(left: dict[Any, float], right: dict[Any, float]) -> None:
    """Equal sample by sample; a histogram's sum up to the last bits (added in another order)."""
    assert left.keys() == right.keys()
    for key, value in left.items():
        assert value == (pytest.approx(right[key], rel=1e-12) if key[0].endswith("_sum") else right[key]), key
