"""The main job on an embedded default: loopback Bedrock, first-party and Vertex servers, a concurrent workload
through the real installed anthropic SDK and boto3's bedrock-runtime client with a mix of faults, the /metrics
endpoint, and a summary of what was recorded.

    bedrock-otel demo                          # 200 streams, default faults, then a summary
    bedrock-otel demo --serve                  # ... and keep serving /metrics until Ctrl-C
    bedrock-otel demo --prometheus             # ... and a local Prometheus scraping it (needs `prometheus`)
    bedrock-otel demo --fault error_first=0.2 --fault truncated=0.1 --streams 1000
    bedrock-otel demo --retry                  # the same faults with retry mode: compare what the app saw
    bedrock-otel demo --pressure               # first a quota cut, retry mode with and without pressure mode
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..config import DEFAULT_PROMETHEUS_PORT, setting
from ..testing import scenarios, workload
from . import summary
from .options import setting_type

NAME = "demo"
HELP = "run a realistic faulty workload on loopback servers, serve /metrics and print a summary"
FAULTS = sorted(set(scenarios.ALL) - set(workload.HEALTHY))


def _positive_int(value: str) -> int:
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise argparse.ArgumentTypeError(f"{value!r} is not valid; accepted values: a whole number >= 1")


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if 0 <= number <= 60:
        return number
    raise argparse.ArgumentTypeError(f"{value!r} is not valid; accepted values: seconds from 0 to 60")


def _fault(value: str) -> tuple[str, float]:
    name, _, rate = value.partition("=")
    if name not in FAULTS:
        raise argparse.ArgumentTypeError(f"{name!r} is not a fault; accepted values: {', '.join(FAULTS)}")
    try:
        share = float(rate)
    except ValueError:
        share = -1.0
    if not 0 <= share <= 1:
        raise argparse.ArgumentTypeError(f"{value!r}: the rate must be a share from 0 to 1, e.g. {name}=0.05")
    return name, share


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ", ".join(f"{k}={v}" for k, v in workload.DEFAULT_FAULTS.items())
    parser.add_argument("--streams", type=_positive_int, default=200, help="streams to run (default 200)")
    parser.add_argument("--concurrency", type=_positive_int, default=8,
                        help="concurrent sync threads, and concurrent async tasks (default 8 each)")
    parser.add_argument("--fault", type=_fault, action="append", default=None, metavar="NAME=RATE",
                        help=f"a fault and its share of streams; repeatable; replaces the default mix ({defaults}). "
                             f"Faults: {', '.join(FAULTS)}")
    parser.add_argument("--no-faults", action="store_true", help="healthy streams only")
    parser.add_argument("--latency", type=_seconds, default=0.05,
                        help="mean seconds before a stream's first event (±50%%); later events 1/20 of it "
                             "(default 0.05)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the workload's random mix (default 1)")
    parser.add_argument("--port", type=setting_type(setting("prometheus_port"), "--port"),
                        default=str(DEFAULT_PROMETHEUS_PORT),
                        help=f"port of /metrics (default {DEFAULT_PROMETHEUS_PORT}; 0 picks a free one)")
    parser.add_argument("--addr", type=setting_type(setting("prometheus_addr"), "--addr"), default="127.0.0.1",
                        help="address /metrics binds to (default 127.0.0.1)")
    parser.add_argument("--repair", action="store_true", help="turn on repair mode (in-band errors raise the "
                                                              "matching SDK exception)")
    parser.add_argument("--retry", action="store_true", help="turn on retry mode (a stream that opens with a "
                                                             "retryable in-band error is retried by the SDK)")
    parser.add_argument("--pressure", action="store_true",
                        help="turn on pressure mode, and first show it: callers offer 3x a quota cut for "
                             "--quota-seconds, under retry mode without and with pressure mode, then a table")
    parser.add_argument("--quota-seconds", type=_seconds, default=15.0,
                        help="with --pressure: how long the quota is cut in each of the two runs (default 15)")
    parser.add_argument("--serve", action="store_true", help="keep serving /metrics after the run, until Ctrl-C")
    parser.add_argument("--prometheus", action="store_true",
                        help="also start the local Prometheus server scraping the demo (implies --serve)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the summary to FILE as JSON")


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal: logs stay clean)."""

    def __init__(self, total: int, stream: Any = sys.stderr) -> None:
        self.total, self.stream, self.enabled = total, stream, stream.isatty()
        self.started = time.monotonic()

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // self.total
        rate = done / max(time.monotonic() - self.started, 1e-9)
        self.stream.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} streams "
                          f"({rate:,.0f}/s)")
        if done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def _boto3_version() -> str | None:
    """The installed boto3's version (anthropic[bedrock] brings it), or None: the demo then leaves boto3 out."""
    try:
        import boto3
    except ImportError:
        return None
    return str(boto3.__version__)


def _traced() -> dict[str, Any]:
    """Spans for the streams, so the metrics carry exemplars: the OTLP pipeline the environment asks for, else an
    SDK tracer provider of the demo's own (sampled spans that go nowhere: their ids are in the exemplars)."""
    from opentelemetry import trace

    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_TRACES_EXPORTER"):
        return {}
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return {}
    from opentelemetry.sdk.trace import TracerProvider

    return {"tracer_provider": TracerProvider()}


def _show_pressure(cut_s: float) -> None:
    """The quota simulator (`testing/quota_sim.py`), small: 24 callers, a quota of 10 a second cut for `cut_s`, then
    restored for 5 s; retry mode alone, then with pressure mode."""
    from ..testing import quota_sim

    configs = [c for c in quota_sim.CONFIGS if c.name in ("retry mode", "retry + pressure")]
    print(f"bedrock-otel demo: pressure mode. 24 callers offer 3x a quota of 10 requests a second for {cut_s:g} s "
          "(HTTP 429 on first-party, rate_limit_error inside HTTP 200 on Bedrock, throttlingException frames and "
          "429s on boto3), then the quota comes back:")
    results = []
    for config in configs:
        print(f"  {config.name} ...", flush=True)
        results.append(quota_sim.run(config, quota=10.0, callers=24, warmup_s=2.0, cut_s=cut_s, recovery_s=5.0))
    print()
    print(quota_sim.table(results))
    print("\n  (while cut: goodput against the quota, throttled attempts per successful call, calls that failed, "
          "latency of the successful ones; then seconds to full rate once the quota is back)\n")


def main(args: argparse.Namespace) -> int:
    import prometheus_client
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

    import bedrock_otel

    from ..exporters.exposition import OPENMETRICS, generate
    from ..monitoring.alerts import prometheus_rules
    from ..monitoring.files import to_yaml
    from ..telemetry import catalog as c
    from ..testing import LoopbackServer
    from ..testing.prometheus import PrometheusNotInstalled, PrometheusServer, host_port

    faults = {} if args.no_faults else dict(args.fault) if args.fault else dict(workload.DEFAULT_FAULTS)
    if sum(faults.values()) > 1:
        sys.stderr.write("bedrock-otel demo: error: --fault rates add up to more than 1\n")
        return 2
    try:
        import anthropic
    except ImportError:
        sys.stderr.write("bedrock-otel demo: error: the anthropic SDK is not installed: "
                         "pip install 'anthropic[bedrock]'\n")
        return 1
    if args.pressure:
        _show_pressure(args.quota_seconds)
    bedrock_otel.instrument(prometheus_port=args.port, prometheus_addr=args.addr, repair=args.repair,
                            retry=args.retry, pressure=args.pressure, **_traced())
    server = bedrock_otel.metrics_server()
    if server is None:
        sys.stderr.write(f"bedrock-otel demo: error: cannot serve /metrics on {args.addr}:{args.port} "
                         "(in use?); choose another with --port (0 picks a free one)\n")
        return 1
    boto3 = _boto3_version()
    clients = workload.demo_clients(boto3=bool(boto3))
    plan = workload.plan(args.streams, faults, seed=args.seed, clients=clients)
    through = f"; boto3 {boto3}: invoke_model_with_response_stream, converse_stream" if boto3 else ""
    mantle = ", Bedrock Mantle" if "bedrock_mantle" in clients else ""
    print(f"bedrock-otel demo: anthropic {anthropic.__version__}, {args.streams} streams "
          f"(Bedrock{mantle}, first-party and Vertex, sync and async, create and stream helpers{through}), "
          f"faults: {', '.join(f'{k}={v:g}' for k, v in faults.items()) or 'none'}")
    print(f"  metrics: {server.url}")
    started = time.monotonic()
    with LoopbackServer(first_event_delay=args.latency, event_delay=args.latency / 20) as loopback:
        seen = workload.run(loopback, plan, args.concurrency, Progress(len(plan)))
    elapsed = time.monotonic() - started
    result = summary.summarize(prometheus_client.REGISTRY.collect())
    result["application saw"] = dict(sorted(seen.items()))
    result["worst error"] = summary.worst_error(openmetrics_families(
        generate(prometheus_client.REGISTRY, OPENMETRICS)[0].decode()))
    print(f"  {len(plan)} streams in {elapsed:.1f} s; the application saw: "
          + ", ".join(f"{k} {v}" for k, v in result["application saw"].items()))
    print()
    print(summary.render(result))
    worst = result["worst error"]
    if worst is not None:
        print(f"\n  most frequent in-band error: {worst['error_type']} ({worst['source']}), {worst['frames']:,.0f} "
              f"frames; the latest stream with it: trace_id {worst['trace_id']} (its exemplar on "
              f"{c.ERROR_FRAMES.prometheus_name}: click it in Grafana to open that trace)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True))
    if not (args.serve or args.prometheus):
        bedrock_otel.uninstrument()
        print("\n  /metrics was served during the run: --serve keeps it up, --prometheus adds a local Prometheus")
        return 0
    prometheus = None
    if args.prometheus:
        try:
            rules = Path(tempfile.mkdtemp(prefix="bedrock-otel-demo-")) / "bedrock-otel-alerts.yml"
            rules.write_text(to_yaml(prometheus_rules()) + "\n")
            prometheus = PrometheusServer([host_port(server.url)], rule_files=[rules], job="bedrock_otel_demo").start()
            print(f"\n  Prometheus: {prometheus.url} (scraping {server.url}; the project's alert rules: "
                  f"{prometheus.url}/alerts)")
        except PrometheusNotInstalled as exc:
            sys.stderr.write(f"bedrock-otel demo: {exc}; serving /metrics only\n")
    print(f"\n  serving {server.url} until interrupted (Ctrl-C)", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # explicit: SIGINT may be ignored (started in the background)
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(0.2):
            pass
    finally:
        if prometheus is not None:
            prometheus.stop()
        bedrock_otel.uninstrument()
    return 0
