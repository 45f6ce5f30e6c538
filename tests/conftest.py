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
