"""Memory per in-flight stream and the time to scrape /metrics at full label cardinality.

    python benchmarks/footprint.py [--streams 1000] [--waves 5] [--models 20] [--scrapes 50]

memory: `--streams` async streams held open at once (each has delivered its first event), bare and then
instrumented (default configuration), through the real SDK with an in-process transport. tracemalloc gives the
Python heap they hold; the difference per stream is what instrumentation keeps per in-flight stream (split
into bedrock_otel's own objects and the OpenTelemetry span). Then `--waves` waves of that many concurrent
streams run to the end: the heap after each wave shows whether memory stays bounded.

scrape: the Prometheus recorder holds every label combination the catalogue allows for `--models` models on
both providers (error types paired with their source, all event types, outcomes, token types, statuses);
`--scrapes` GETs of the real /metrics endpoint over loopback are timed. Prints a table; `--json` for a file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import statistics
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

import bedrock_otel
from bedrock_otel import errors
from bedrock_otel import semconv as sc
from bedrock_otel.errors import RETRY_STATUS
from bedrock_otel.telemetry import catalog as c
from bedrock_otel.telemetry.catalog import CATALOG
from bedrock_otel.telemetry.prometheus import PrometheusRecorder

sys.path.insert(0, str(Path(__file__).parent))
import replay  # the benchmarks' clients and pipeline, shared with compare.py

# -- memory -------------------------------------------------------------------------------------------------


async def _hold_open(client: Any, streams: int) -> list[Any]:
    """`streams` streams that have each delivered their first event and wait for the caller to go on."""
    request = {"model": replay.MODELS["first_party"], "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    held = []
    for _ in range(streams):
        stream = await client.messages.create(stream=True, **request)
        iterator = stream.__aiter__()
        await iterator.__anext__()
        held.append((stream, iterator))
    return held


async def _finish(held: list[Any]) -> None:
    async def drain(iterator: Any) -> None:
        async for _ in iterator:
            pass
    await asyncio.gather(*(drain(iterator) for _stream, iterator in held))


def _heap(filter_path: str | None = None) -> int:
    gc.collect()
    if filter_path is None:
        return tracemalloc.get_traced_memory()[0]
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, f"*{filter_path}*")])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def _in_flight(loop: asyncio.AbstractEventLoop, client: Any, streams: int) -> dict[str, float]:
    """Heap held per open stream: in total, in bedrock_otel's files and in the OpenTelemetry SDK's."""
    parts = {"total": None, "bedrock_otel": "/bedrock_otel/", "opentelemetry": "/opentelemetry/"}
    before = {name: _heap(path) for name, path in parts.items()}
    held = loop.run_until_complete(_hold_open(client, streams))
    during = {name: _heap(path) for name, path in parts.items()}
    loop.run_until_complete(_finish(held))
    del held
    return {name: (during[name] - before[name]) / streams for name in parts}


def memory(streams: int, waves: int) -> dict[str, Any]:
    body = replay.make_body("first_party", 20)
    loop = asyncio.new_event_loop()
    pipeline = replay.Pipeline.build()
    tracemalloc.start()
    bare_client = replay.make_client("first_party", True, body, {})
    loop.run_until_complete(_finish(loop.run_until_complete(_hold_open(bare_client, 50))))  # warm-up
    bare = _in_flight(loop, bare_client, streams)
    options = replay.CONFIGURATIONS["bedrock_otel"].setup(pipeline)
    client = replay.make_client("first_party", True, body, options)
    loop.run_until_complete(_finish(loop.run_until_complete(_hold_open(client, 50))))
    pipeline.export()
    instrumented = _in_flight(loop, client, streams)
    pipeline.export()
    after_waves = []
    for _ in range(waves):
        held = loop.run_until_complete(_hold_open(client, streams))
        loop.run_until_complete(_finish(held))
        del held
        pipeline.export()  # as a periodic exporter would: the exporter's memory is not instrumentation state
        after_waves.append(_heap())
    tracemalloc.stop()
    bedrock_otel.uninstrument()
    loop.close()
    return {
        "streams": streams,
        "bare_bytes_per_stream": bare["total"],
        "instrumented_bytes_per_stream": instrumented["total"],
        "added_bytes_per_stream": instrumented["total"] - bare["total"],
        "bedrock_otel_bytes_per_stream": instrumented["bedrock_otel"],
        "opentelemetry_bytes_per_stream": instrumented["opentelemetry"],
        "heap_after_each_wave": after_waves,
    }


# -- scrape -------------------------------------------------------------------------------------------------

ERROR_TYPES = [*sorted(errors.ERRORS), sc.OTHER]
# every value an attribute can take besides the stream's own labels; the error type pairs with its source
DOMAINS: dict[str, tuple[str, ...]] = {
    sc.EVENT_TYPE: (*sc.EVENT_TYPES, sc.OTHER, sc.NONE),
    sc.MALFORMED_REASON: (sc.REASON_START_WITHOUT_MESSAGE, sc.REASON_MISSING_TYPE, sc.REASON_INVALID_JSON),
    sc.RATE_LIMIT_SOURCE: (sc.SOURCE_ERROR_EVENT, sc.SOURCE_EXCEPTION_FRAME, sc.SOURCE_HTTP_429),
    sc.OUTCOME: sc.OUTCOMES,
    sc.HTTP_STATUS: ("200", "429", "500", "529"),
    sc.RATE_LIMIT_RESOURCE: sc.RATE_LIMIT_RESOURCES,
    sc.TOKEN_TYPE: (sc.TOKEN_INPUT, sc.TOKEN_OUTPUT, sc.TOKEN_CACHE_READ, sc.TOKEN_CACHE_CREATION),
    sc.OPERATION_NAME: (sc.OPERATION_CHAT,),
    sc.ERROR_TYPE: ("", *ERROR_TYPES),
    sc.INTERNAL_COMPONENT: sc.INTERNAL_COMPONENTS,
    sc.DROPPED_REASON: sc.DROPPED_REASONS,
    sc.RETRY_RESULT: sc.RETRY_RESULTS,
    sc.PRESSURE_REASON: sc.PRESSURE_REASONS,
}
PAIRED = (sc.ERROR_TYPE, sc.ERROR_SOURCE)


def _stream_keys(models: int) -> list[dict[str, str]]:
    keys = []
    for i in range(models):
        keys.append({sc.PROVIDER: sc.PROVIDER_ANTHROPIC, sc.PLATFORM: sc.PLATFORM_FIRST_PARTY,
                     sc.REQUEST_MODEL: f"claude-model-{i}",
                     sc.CLOUD_REGION: "", sc.INFERENCE_PROFILE: "", sc.STREAM_API: sc.API_MESSAGES})
        keys.append({sc.PROVIDER: sc.PROVIDER_BEDROCK, sc.PLATFORM: sc.PLATFORM_BEDROCK,
                     sc.REQUEST_MODEL: f"global.anthropic.claude-model-{i}",
                     sc.CLOUD_REGION: "us-east-1", sc.INFERENCE_PROFILE: "global",
                     sc.STREAM_API: sc.API_MESSAGES})
    return keys


# the realistic mix: 20 models over 2 providers (10 each, the Bedrock ones in 3 regions), 4 error types actually
# seen, every event type, no malformed events and no retry mode
REGIONS = ("us-east-1", "us-west-2", "eu-central-1")
SEEN_ERRORS = ["overloaded_error", "rate_limit_error", "api_error", "throttlingException"]
REALISTIC = {**DOMAINS, sc.EVENT_TYPE: sc.EVENT_TYPES, sc.ERROR_TYPE: ("", *SEEN_ERRORS),
             sc.HTTP_STATUS: ("200", "429", "529")}
# the opt-in modes' families stay out of the realistic mix (retry's, as found in no healthy run; pressure mode's)
NOT_SEEN = (c.MALFORMED_EVENTS, c.STREAM_RETRIES, c.STREAMS_RECOVERED, c.PRESSURE_RATE, c.PRESSURE_WAIT,
            c.PRESSURE_REFUSED)


def _realistic_keys() -> list[dict[str, str]]:
    keys = [{sc.PROVIDER: sc.PROVIDER_ANTHROPIC, sc.PLATFORM: sc.PLATFORM_FIRST_PARTY,
             sc.REQUEST_MODEL: f"claude-model-{i}", sc.CLOUD_REGION: "",
             sc.INFERENCE_PROFILE: "", sc.STREAM_API: sc.API_MESSAGES} for i in range(10)]
    keys += [{sc.PROVIDER: sc.PROVIDER_BEDROCK, sc.PLATFORM: sc.PLATFORM_BEDROCK,
              sc.REQUEST_MODEL: f"global.anthropic.claude-model-{i}",
              sc.CLOUD_REGION: region, sc.INFERENCE_PROFILE: "global", sc.STREAM_API: sc.API_MESSAGES}
             for i in range(10) for region in REGIONS]
    return keys


def label_combinations(instrument: Any, keys: list[dict[str, str]], domains: dict[str, tuple[str, ...]] = DOMAINS,
                       error_types: list[str] = ERROR_TYPES) -> list[tuple[str, ...]]:
    """Every label tuple `instrument` can carry for the stream `keys`, the other attributes taking `domains`."""
    own = [a for a in instrument.attributes if a not in keys[0]]
    choices = []
    for attribute in own:
        if attribute == sc.ERROR_SOURCE:
            continue  # follows the error type
        if attribute == sc.ERROR_TYPE and sc.ERROR_SOURCE in own:
            choices.append([{sc.ERROR_TYPE: t, sc.ERROR_SOURCE: errors.source_of(t)} for t in error_types])
        elif attribute == sc.ERROR_TYPE and sc.RETRY_RESULT in own:  # only retryable types are retried
            choices.append([{sc.ERROR_TYPE: t} for t in sorted(RETRY_STATUS)])
        else:
            choices.append([{attribute: value} for value in domains[attribute]])
    shared = [a for a in instrument.attributes if a not in own]
    unique = {tuple(key[a] for a in shared): key for key in keys}.values()
    combinations = []
    for key in unique:
        for picks in itertools.product(*choices):
            labels = dict(key)
            for pick in picks:
                labels.update(pick)
            combinations.append(tuple(labels[a] for a in instrument.attributes))
    return combinations


OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}  # what Prometheus asks, exemplars or not
EXEMPLAR = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def _timed_scrapes(url: str, scrapes: int, gzip: bool, between: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[list[float], bytes]:
    times, body = [], b""
    request = urllib.request.Request(url, headers={**({"Accept-Encoding": "gzip"} if gzip else {}), **(headers or {})})
    for _ in range(scrapes):
        if between is not None:
            between()  # untimed: the streams that end between two scrapes
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        times.append(time.perf_counter() - start)
    return times, body


def scrape(models: int, scrapes: int, realistic: bool = False) -> dict[str, Any]:
    """GET /metrics over loopback, plain and gzip (as Prometheus asks), with every label combination the
    catalogue allows for `models` models, or the realistic mix."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    recorder = PrometheusRecorder(registry)
    every: list[tuple[Any, tuple[str, ...], Any]] = []
    for instrument in CATALOG:
        if realistic and instrument in NOT_SEEN:
            continue
        combinations = (label_combinations(instrument, _realistic_keys(), REALISTIC, SEEN_ERRORS) if realistic
                        else label_combinations(instrument, _stream_keys(models)))
        every += [(instrument, values, [1.0] if instrument.points else 1) for values in combinations]
    recorder.record_all(every)
    server = bedrock_otel.start_metrics_server(0, registry=registry)
    try:  # every series changed since the last scrape (the worst case); then nothing did
        times, body = _timed_scrapes(server.url, scrapes, False, lambda: recorder.record_all(every))
        gzip_times, gzipped = _timed_scrapes(server.url, scrapes, True, lambda: recorder.record_all(every))
        unchanged, _ = _timed_scrapes(server.url, scrapes, False)
        # OpenMetrics, every series changed: without exemplars, then with one on every series that keeps them
        openmetrics, _ = _timed_scrapes(server.url, scrapes, False, lambda: recorder.record_all(every), OPENMETRICS)
        with_exemplars, exemplar_body = _timed_scrapes(server.url, scrapes, False,
                                                       lambda: recorder.record_all(every, EXEMPLAR), OPENMETRICS)
    finally:
        server.close()
    samples = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return {"mix": "realistic" if realistic else f"{models} models x every label combination",
            "models": 20 if realistic else models, "series": len(recorder), "samples": samples, "bytes": len(body),
            "gzip_bytes": len(gzipped), "median_ms": statistics.median(times) * 1e3, "max_ms": max(times) * 1e3,
            "gzip_median_ms": statistics.median(gzip_times) * 1e3, "scrapes": scrapes,
            "unchanged_median_ms": statistics.median(unchanged) * 1e3,
            "openmetrics_median_ms": statistics.median(openmetrics) * 1e3,
            "openmetrics_exemplars_median_ms": statistics.median(with_exemplars) * 1e3,
            "exemplars": exemplar_body.count(b" # {"),
            "native": recorder.native is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--waves", type=int, default=5)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = {"memory": memory(args.streams, args.waves), "scrape": scrape(args.models, args.scrapes),
              "realistic_scrape": scrape(args.models, args.scrapes, realistic=True)}
    m = result["memory"]
    print(f"memory, {m['streams']} async streams in flight (first event read), heap per stream:")
    print(f"  bare {m['bare_bytes_per_stream']:.0f} B, instrumented {m['instrumented_bytes_per_stream']:.0f} B: "
          f"+{m['added_bytes_per_stream']:.0f} B (bedrock_otel's objects {m['bedrock_otel_bytes_per_stream']:.0f} B, "
          f"OpenTelemetry span {m['opentelemetry_bytes_per_stream']:.0f} B)")
    waves = ", ".join(f"{b / 2**20:.2f}" for b in m["heap_after_each_wave"])
    print(f"  heap after each wave of {m['streams']} concurrent streams (MiB): {waves}")
    for s in (result["scrape"], result["realistic_scrape"]):
        print(f"scrape, {s['mix']}: {s['series']} series, {s['samples']} samples, {s['bytes'] / 1024:.0f} KiB "
              f"({s['gzip_bytes'] / 1024:.0f} KiB gzip); GET /metrics median {s['median_ms']:.1f} ms "
              f"(gzip {s['gzip_median_ms']:.1f} ms), max {s['max_ms']:.1f} ms over {s['scrapes']} scrapes, "
              f"every series changed since the last; {s['unchanged_median_ms']:.1f} ms when none did; OpenMetrics "
              f"{s['openmetrics_median_ms']:.1f} ms, with {s['exemplars']} exemplars "
              f"{s['openmetrics_exemplars_median_ms']:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
