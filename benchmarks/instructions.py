"""Instructions and cache misses per stream, by configuration: the fixed cost without the machine's noise.

    python benchmarks/instructions.py [--configs bare,hooks,prometheus,metrics,default] [--streams 200] [--gc off]

Wall-clock A/B runs on a shared 2-core VM move by tens of µs per stream from run to run, which is the size of
what is being measured. Valgrind counts instead: each configuration runs `--warmup` streams and then
`--streams` (or three times as many) 20-event first-party streams through the real SDK (`replay.py`'s in-process
transport) under cachegrind, and the difference of the two runs divided by twice `--streams` is the cost of one
stream, start-up and warm-up cancelled out. Deterministic with `PYTHONHASHSEED=0` (set here) for one tree at one
path; the same code copied to another path moved by up to 7 k instructions per stream (4 k default, 7 k hooks:
where objects land changes dict probing), so an A/B of two commits is a tie below ~10 k. It includes the
metric collection a reader does after the streams (`Pipeline.export`), which is where the OpenTelemetry
recorder's histogram points are recorded. Needs valgrind (`apt-get install valgrind`); ~3 minutes per
configuration on 2 cores (two configurations at a time).

Configurations: bare (no instrumentation), hooks (bedrock_otel with nothing recorded: `metrics="none"`,
`traces=False`), prometheus (the Prometheus recorder only), metrics (both recorders, no spans), default.
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
SETTINGS: dict[str, dict[str, Any] | None] = {
    "bare": None,
    "hooks": {"metrics": "none", "traces": False},
    "prometheus": {"metrics": "prometheus", "traces": False},
    "metrics": {"traces": False},
    "default": {},
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
client = replay.make_client("first_party", False, replay.make_body("first_party", 20), {{}})
pipeline = replay.Pipeline.build()
if settings is not None:
    from prometheus_client import CollectorRegistry
    import bedrock_otel
    bedrock_otel.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider,
                            registry=CollectorRegistry(), **settings)
replay.stream_runner("first_party/create/sync", client, warmup)()
pipeline.export()
replay.stream_runner("first_party/create/sync", client, streams)()
pipeline.export()
"""


def counted(config: str, warmup: int, streams: int, tmp: Path, gc: str = "on") -> dict[str, int]:
    """Cachegrind's totals for one process running `streams` streams after `warmup`."""
    out = tmp / f"{config}-{streams}.out"
    done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=yes", f"--cachegrind-out-file={out}",
                           sys.executable, "-c", CHILD.format(here=str(HERE)), json.dumps(SETTINGS[config]),
                           str(warmup), str(streams), gc],
                          capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, timeout=3600)
    if done.returncode != 0:  # say why: the child's own traceback, not just its exit status
        raise RuntimeError(f"{config}, {streams} streams: exit {done.returncode}\n{done.stderr[-3000:]}")
    lines = out.read_text().splitlines()
    events = next(line for line in lines if line.startswith("events:")).split()[1:]
    totals = next(line for line in lines if line.startswith("summary:")).split()[1:]
    return dict(zip(events, map(int, totals)))


def per_stream(config: str, warmup: int, streams: int, tmp: Path, gc: str = "on") -> dict[str, float]:
    small, large = (counted(config, warmup, n, tmp, gc) for n in (streams, 3 * streams))
    return {event: (large[event] - small[event]) / (2 * streams) for event in EVENTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(SETTINGS))
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=50)
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
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c: pool.submit(per_stream, c, args.warmup, args.streams, Path(tmp), args.gc) for c in configs}
        results = {c: future.result() for c, future in futures.items()}
    print(f"per 20-event first-party stream, {args.streams} and {3 * args.streams} streams after {args.warmup}"
          f"{', cyclic GC off' if args.gc == 'off' else ''}:")
    header = "".join(f"{name:>18}" for name in EVENTS.values())
    print(f"{'configuration':<14}{header}{'instructions over bare':>26}")
    bare = results.get("bare")
    for config, figures in results.items():
        over = f"{figures['Ir'] - bare['Ir']:>+26,.0f}" if bare is not None and config != "bare" else f"{'':>26}"
        print(f"{config:<14}" + "".join(f"{figures[e]:>18,.0f}" for e in EVENTS) + over)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
