"""What retry mode's hold-back costs the caller: when `create()` returns, and when the first content event and the
end of the stream arrive, bare, instrumented, and in retry mode, over real loopback HTTP with paced events.

    python benchmarks/retry_latency.py [--streams 40] [--first 0.2] [--gap 0.05]

The server sends `message_start` after `--first` seconds and each later event `--gap` seconds apart (±50%), so
the preamble (`message_start`, `content_block_start`) takes about first + gap before the first delta. Retry mode
holds the preamble back: `create()` returns with the first delta instead of with the response headers, while the
first content event should reach the caller at the same time as without it. Prints medians in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import anthropic

import bedrock_otel
from bedrock_otel.testing import LoopbackServer
from bedrock_otel.testing.workload import request_for

MODES = {"bare": None, "instrumented": {}, "retry mode": {"retry": True}}


def one_stream(client: Any) -> tuple[float, float, float]:
    """(create() returned, first content_block_delta, end of stream), seconds after the call."""
    started = time.perf_counter()
    stream = client.messages.create(stream=True, **request_for("first_party", "normal"))
    returned = time.perf_counter() - started
    first = None
    with stream:
        for event in stream:
            if first is None and event.type == "content_block_delta":
                first = time.perf_counter() - started
    assert first is not None
    return returned, first, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=40, help="streams per mode (default 40)")
    parser.add_argument("--first", type=float, default=0.2, help="mean seconds before message_start (default 0.2)")
    parser.add_argument("--gap", type=float, default=0.05, help="mean seconds between later events (default 0.05)")
    args = parser.parse_args()
    print(f"anthropic {anthropic.__version__}, {args.streams} streams per mode, message_start after ~{args.first:g} s, "
          f"events ~{args.gap:g} s apart (medians, ms)")
    print(f"{'mode':<14}{'create() returns':>18}{'first content':>16}{'stream ends':>14}")
    with LoopbackServer(first_event_delay=args.first, event_delay=args.gap) as server:
        client = anthropic.Anthropic(**server.anthropic_client_kwargs())
        for mode, settings in MODES.items():
            if settings is not None:
                bedrock_otel.instrument(**settings)
            try:
                timings = [one_stream(client) for _ in range(args.streams)]
            finally:
                if settings is not None:
                    bedrock_otel.uninstrument()
            medians = [statistics.median(t[i] for t in timings) * 1000 for i in range(3)]
            print(f"{mode:<14}" + "".join(f"{m:>{w}.1f}" for m, w in zip(medians, (18, 16, 14))))


if __name__ == "__main__":
    main()
