"""Reliability at scale: bounded cardinality under 10,000 model ids and novel event and error types, and the
soak benchmark in a reduced size (the full size: `python benchmarks/soak.py`). Marked heavy: nox runs them in
their own session, on the newest SDK."""

from __future__ import annotations

import importlib.util
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import bedrock_otel
from bedrock_otel import errors
from bedrock_otel import semconv as sc
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.testing import scenarios
from bedrock_otel.testing.capture import CapturedTelemetry
from bedrock_otel.testing.server import SCENARIO_HEADER, LoopbackServer
from bedrock_otel.testing.workload import make_client

pytestmark = pytest.mark.heavy
ROOT = Path(__file__).parent.parent
FAMILIES = tuple(i.prometheus_name.removesuffix("_total") for i in c.CATALOG)


def _novel(i: int) -> scenarios.Scenario:
    """A stream carrying an event type and an error type nobody has seen before."""
    parts = (scenarios.message_start(), scenarios.Event({"type": f"novel_event_{i}"}), *scenarios.text_block(),
             scenarios.error_event(f"novel_error_{i}"))
    return scenarios.Scenario(f"novel_{i}", (scenarios.Reply(parts=parts),))


def _series(url: str) -> list[str]:
    """The bedrock_otel sample lines of one scrape of the real endpoint."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return [line for line in text.splitlines() if line.startswith(FAMILIES)]


def _label_values(lines: list[str], label: str) -> set[str]:
    values = set()
    for line in lines:
        head = line.split("{", 1)[1] if "{" in line else ""
        for pair in head.split('",'):
            if pair.startswith(f'{label}="'):
                values.add(pair.split('="', 1)[1].rstrip('"}').split('"')[0])
    return values


def test_ten_thousand_models_and_novel_types_stay_within_the_caps() -> None:
    total, checkpoint, cap = 10_000, 1_000, 64
    with LoopbackServer() as server, CapturedTelemetry() as t:
        server.register(*(_novel(i) for i in range(total)))
        metrics = bedrock_otel.start_metrics_server(0, registry=t.registry)
        clients = {p: make_client(server, p, "sync", max_retries=0) for p in ("first_party", "bedrock")}

        def one(i: int) -> None:
            provider = ("first_party", "bedrock")[i % 2]
            try:
                for _event in clients[provider].messages.create(
                        model=f"model-{i}", max_tokens=8, stream=True, messages=[{"role": "user", "content": "hi"}],
                        extra_headers={SCENARIO_HEADER: f"novel_{i}"}):
                    pass
            except Exception:  # the error event at the end of every stream
                pass

        recorder = bedrock_otel.instrumentation._PROMETHEUS_RECORDERS[id(t.registry)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(checkpoint)))
            early_series, early_children = _series(metrics.url), len(recorder)
            list(pool.map(one, range(checkpoint, total)))
        late_series, late_children = _series(metrics.url), len(recorder)
        metrics.close()

    models = _label_values(late_series, "gen_ai_request_model")
    print(f"\n  series after {checkpoint} streams: {len(early_series)}; after {total}: {len(late_series)}; "
          f"model label values: {len(models)}; recorder children: {early_children} -> {late_children}")
    assert len(models - {sc.OTHER}) == cap and sc.OTHER in models
    assert _label_values(late_series, "anthropic_stream_event_type") <= {*sc.EVENT_TYPES, sc.OTHER}
    assert _label_values(late_series, "error_type") <= {*errors.ANTHROPIC_ERROR_TYPES, *errors.BEDROCK_EXCEPTION_TYPES,
                                                        sc.OTHER, "APIStatusError", ""}
    assert len(late_series) == len(early_series)  # nothing new after the caps filled up
    assert late_children == early_children  # and no per-value state kept behind the scenes
    dropped = t.value(c.TELEMETRY_DROPPED.prometheus_name, bedrock_otel_dropped_reason=sc.DROPPED_LABEL_OVERFLOW)
    assert dropped == total - cap  # every folded model id counted
    other_streams = sum(v for labels, v in t.samples(c.STREAMS.prometheus_name).items()
                        if ("gen_ai_request_model", sc.OTHER) in labels)
    assert other_streams == total - cap


def test_soak_reduced() -> None:
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    soak = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(soak)  # type: ignore[union-attr]
    # the Python heap: at this size the allocator's resident high-water mark is still settling (the full run
    # checks resident memory)
    figures: dict[str, Any] = soak.soak(streams=2000, tasks=200, threads=16, trace_heap=True)
    print("\n" + "\n".join(f"  {k:24} {v}" for k, v in figures.items() if k != "mismatches"))
    assert soak.problems(figures, max_growth_mib=5.0) == []
    assert figures["spans_ended"] == 2000 and figures["outcomes"]["error"] > 0  # the faults really happened
