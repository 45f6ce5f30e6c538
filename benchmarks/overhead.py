"""Per-event overhead of bedrock_otel on a long stream, through the real SDK with an in-process transport.

    python benchmarks/overhead.py [--events 2000] [--reps 30]

Bare and instrumented runs alternate (A B A B) in one process; the table shows the minimum and median time
per stream, the instrumented/bare ratio of the minima, and the added microseconds per event. The full
harness with peers and fresh processes is the performance issue's; this one keeps the hot path honest.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any, Callable

import anthropic
import anthropic._base_client

import bedrock_otel
from bedrock_otel.testing import scenarios
from bedrock_otel.testing.server import encode_bedrock, encode_sse

# the HTTP library this SDK version uses: httpx2 from 1.0, httpx before
httpx: Any = getattr(anthropic._base_client, "httpx2", None) or anthropic._base_client.httpx


def body(events: int, bedrock: bool) -> bytes:
    parts = scenarios.normal_parts(tuple(f"token{i} " for i in range(events - 5)))
    return b"".join((encode_bedrock if bedrock else encode_sse)(p) for p in parts)


def client_for(bedrock: bool, payload: bytes) -> Any:
    content_type = "application/vnd.amazon.eventstream" if bedrock else "text/event-stream"

    def handler(request: Any) -> Any:
        return httpx.Response(200, headers={"content-type": content_type}, content=payload)

    http_client = httpx.Client(transport=httpx.MockTransport(handler))
    if bedrock:
        return anthropic.AnthropicBedrock(aws_access_key="a", aws_secret_key="b", aws_region="us-east-1",
                                          base_url="http://mock", http_client=http_client)
    return anthropic.Anthropic(api_key="k", base_url="http://mock", http_client=http_client)


def one_stream(client: Any, model: str) -> Callable[[], None]:
    def run() -> None:
        for _ in client.messages.create(model=model, max_tokens=5, stream=True,
                                        messages=[{"role": "user", "content": "x"}]):
            pass
    return run


def measure(run: Callable[[], None], reps: int) -> tuple[list[float], list[float]]:
    from prometheus_client import CollectorRegistry

    bare: list[float] = []
    instrumented: list[float] = []
    for _ in range(reps):
        for series, on in ((bare, False), (instrumented, True)):
            if on:
                bedrock_otel.instrument(registry=CollectorRegistry())
            gc.collect()
            start = time.perf_counter()
            run()
            series.append(time.perf_counter() - start)
            if on:
                bedrock_otel.uninstrument()
    return bare, instrumented


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    print(f"anthropic {anthropic.__version__}, {args.events} events per stream, {args.reps} A/B repetitions")
    print(f"{'path':<12}{'bare min ms':>12}{'instr min ms':>14}{'bare med':>10}{'instr med':>11}{'ratio':>8}"
          f"{'µs/event':>10}")
    for name, bedrock, model in (("first-party", False, scenarios.MODEL), ("bedrock", True, scenarios.BEDROCK_MODEL)):
        run = one_stream(client_for(bedrock, body(args.events, bedrock)), model)
        run()  # warm-up (botocore loads its service model once)
        bare, instrumented = measure(run, args.reps)
        ratio = min(instrumented) / min(bare)
        per_event = (min(instrumented) - min(bare)) / args.events * 1e6
        print(f"{name:<12}{min(bare) * 1e3:>12.2f}{min(instrumented) * 1e3:>14.2f}"
              f"{statistics.median(bare) * 1e3:>10.2f}{statistics.median(instrumented) * 1e3:>11.2f}"
              f"{ratio:>8.3f}{per_event:>+10.2f}")


if __name__ == "__main__":
    main()
