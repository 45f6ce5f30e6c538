"""Instructions and cache misses per stream, by configuration: the fixed cost without the machine's noise.

    python benchmarks/instructions.py [--configs bare,hooks,prometheus,metrics,default,no_meter_provider]
                                      [--streams 200] [--events 20] [--gc off]

Wall-clock A/B runs on a shared 2-core VM move by tens of µs per stream from run to run, which is the size of
what is being measured. Valgrind counts instead: each configuration runs `--warmup` streams and then
`--streams` (or three times as many) first-party streams of `--events` events (20 by default) through the
real SDK (`replay.py`'s in-process transport) under cachegrind, and the difference of the two runs divided by
twice `--streams` is the cost of one stream, start-up and warm-up cancelled out. Cachegrind counts every thread
of the process. Deterministic with `PYTHONHASHSEED=0` (set here) for one tree at one path; the same code
copied to another path moved by up to 7 k instructions per stream (4 k default, 7 k hooks: where objects land
changes dict probing), so an A/B of two commits is a tie below ~10 k. It includes the metric collection a
reader does after the streams (`Pipeline.export`), where OpenTelemetry readers get their data. Needs valgrind
(`apt-get install valgrind`); ~3 minutes per 20-event configuration on 2 cores (two runs at a time).

Configurations: bare (no instrumentation), hooks (bedrock_otel with nothing recorded: `metrics="none"`,
`traces=False`), prometheus (the Prometheus recorder only), metrics (both recorders, no spans), default (the
application's SDK MeterProvider, as OTLP users have), no_meter_provider (default settings, no MeterProvider in the
application: OpenTelemetry's no-op one), floor (no bedrock_otel: the same span and metrics written by hand,
`floor.py`). Per event: `--events 2000 --streams 1 --warmup 1`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SETTINGS: dict[str, dict[str, Any] | str | None] = {
    "bare": None,
    "hooks": {"metrics": "none", "traces": False},
    "prometheus": {"metrics": "prometheus", "traces": False},
    "metrics": {"traces": False},
    "default": {},
    "no_meter_provider": {"meter_provider": None},  # None: the global one, which nobody set (the API's no-op)
    "floor": "floor",  # no bedrock_otel: the same telemetry written by hand (floor.py `hand_written`)
}
# cachegrind's counters: instructions, first-level instruction and data misses (reads and writes)
EVENTS = {"Ir": "instructions", "I1mr": "L1i misses", "D1mr": "L1d read misses", "D1mw": "L1d write misses"}

CHILD = """
import gc, json, sys
sys.path.insert(0, {here!r})
import replay
settings, warmup, streams, collect = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if collect == "off":
    gc.disable()
client = replay.make_client("first_party", False, replay.make_body("first_party", int(sys.argv[5])), {{}})
pipeline = replay.Pipeline.build()
wrap = replay._hand_written(pipeline) if settings == "floor" else None
if isinstance(settings, dict):
    from prometheus_client import CollectorRegistry
    import bedrock_otel
    settings = {{"meter_provider": pipeline.meter_provider, **settings}}
    bedrock_otel.instrument(tracer_provider=pipeline.tracer_provider, registry=CollectorRegistry(), **settings)
replay.stream_runner("first_party/create/sync", client, warmup, wrap)()
pipeline.export()
replay.stream_runner("first_party/create/sync", client, streams, wrap)()
pipeline.export()
"""


def counted(config: str, warmup: int, streams: int, tmp: Path, gc: str = "on", events: int = 20) -> dict[str, int]:
    """Cachegrind's totals for one process running `streams` streams of `events` events after `warmup`."""
    out = tmp / f"{config}-{streams}.out"
    done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=yes", f"--cachegrind-out-file={out}",
                           sys.executable, "-c", CHILD.format(here=str(HERE)), json.dumps(SETTINGS[config]),
                           str(warmup), str(streams), gc, str(events)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, timeout=3600)
    if done.returncode != 0:  # say why: the child's own traceback, not just its exit status
        raise RuntimeError(f"{config}, {streams} streams: exit {done.returncode}\n{done.stderr[-3000:]}")
    lines = out.read_text().splitlines()
    events = next(line for line in lines if line.startswith("events:")).split()[1:]
    totals = next(line for line in lines if line.startswith("summary:")).split()[1:]
    return dict(zip(events, map(int, totals)))


def per_stream(small: dict[str, int], large: dict[str, int], streams: int) -> dict[str, float]:
    """One stream's counts: the difference of the `streams` and `3 * streams` runs over twice `streams`."""
    return {event: (large[event] - small[event]) / (2 * streams) for event in EVENTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(SETTINGS))
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--events", type=int, default=20, help="events per stream (the body's content deltas + 5)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--gc", choices=("on", "off"), default="on",
                        help="off: the cyclic collector disabled in the child, so that where its collections fall "
                             "(which moves with every allocation) does not move an A/B of two commits")
    args = parser.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(configs) - set(SETTINGS))
    if unknown or not configs:
        parser.error(f"--configs: unknown {', '.join(unknown) or 'none given'}; accepted values: {', '.join(SETTINGS)}")
    if shutil.which("valgrind") is None:
        sys.exit("instructions.py needs valgrind on PATH (Debian: apt-get install valgrind)")
    sizes = (args.streams, 3 * args.streams)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=2) as pool:  # two runs at a time
        runs = {(c, n): pool.submit(counted, c, args.warmup, n, Path(tmp), args.gc, args.events)
                for c in configs for n in sizes}
        results = {c: per_stream(runs[c, sizes[0]].result(), runs[c, sizes[1]].result(), args.streams)
                   for c in configs}
    print(f"per {args.events}-event first-party stream, {args.streams} and {3 * args.streams} streams after "
          f"{args.warmup}{', cyclic GC off' if args.gc == 'off' else ''}:")
    header = "".join(f"{name:>18}" for name in EVENTS.values())
    print(f"{'configuration':<14}{header}{'instructions over bare':>26}")
    bare = results.get("bare")
    for config, figures in results.items():
        over = f"{'':>26}"
        if bare is not None and config != "bare":
            over = f"{figures['Ir'] - bare['Ir']:>+18,.0f} {(figures['Ir'] / bare['Ir'] - 1):>+7.1%}"
        print(f"{config:<14}" + "".join(f"{figures[e]:>18,.0f}" for e in EVENTS) + over)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
