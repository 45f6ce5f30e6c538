"""What bedrock_otel costs a boto3 stream: per event and per stream, for InvokeModelWithResponseStream and
ConverseStream, bare versus instrumented (metrics through the Prometheus recorder, spans through a
SimpleSpanProcessor into memory).

    python benchmarks/boto3_cost.py [--rounds 5] [--reps 15] [--long 2000]

Real botocore over loopback HTTP (the toolkit's server, in this process: its threads share the interpreter with
both runs alike). Each round times a short stream (1 start, 3 deltas, stop: 7 to 8 events) and a long one
(`--long` deltas) bare and instrumented, alternating; the figures are medians over rounds. Per event is the
instrumented-minus-bare difference of the long stream less that of the short one, over the extra events; per
stream is the short stream's difference (HTTP included, so expect noise of a few microseconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import bedrock_otel
from bedrock_otel.testing import LoopbackServer, scenarios, workload
from bedrock_otel.testing.capture import CapturedTelemetry


def timed(client: Any, kind: str, scenario: str, reps: int) -> float:
    """The median time of `reps` streams of `scenario`, read to the end."""
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        with workload.boto3_scenario(scenario):
            for _event in workload.boto3_stream(client, kind):
                pass
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=15, help="streams per block (default 15)")
    parser.add_argument("--long", type=int, default=2000, help="deltas of the long stream (default 2000)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    long_stream = scenarios.Scenario(f"deltas_{args.long}",
                                     (scenarios.Reply(parts=scenarios.normal_parts(("x",) * args.long)),))
    long_name = long_stream.name
    figures: dict[str, dict[str, float]] = {}
    with LoopbackServer() as server:
        server.register(long_stream)
        client = workload.make_boto3_client(server)
        for kind in workload.BOTO3:
            diffs: dict[str, list[float]] = {"normal": [], long_name: []}
            bare_long = 0.0
            for _ in range(args.rounds):
                for scenario in diffs:
                    bare = timed(client, kind, scenario, args.reps)
                    with CapturedTelemetry(metrics="prometheus"):
                        ours = timed(client, kind, scenario, args.reps)
                    diffs[scenario].append(ours - bare)
                    bare_long = bare
            short, long = statistics.median(diffs["normal"]), statistics.median(diffs[long_name])
            figures[kind] = {"per_stream_us": short * 1e6, "per_event_us": (long - short) / (args.long - 3) * 1e6}
            print(f"{kind:<16} per stream {short * 1e6:+8.1f} µs   per event {figures[kind]['per_event_us']:+6.2f} µs "
                  f"(bare: {bare_long / (args.long + 4) * 1e6:.1f} µs an event)")
        client.close()
    assert not bedrock_otel.is_instrumented()
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out)


if __name__ == "__main__":
    main()
