"""bedrock_otel's overhead next to every peer's: recorded streams through the real SDK, A/B in fresh processes.

    python benchmarks/compare.py                     # everything: ~80 min on 2 cores; peers' envs built by uv
    python benchmarks/compare.py --configs bedrock_otel --rounds 3 --paths first_party/create/sync

Each configuration runs in its own fresh process (`replay.py`) right after a bare process of the same
environment (A B A B ..., the order flipped every other round), `--rounds` times. bedrock_otel's
configurations (default, metrics-only, spans-only) and the SDK's built-in tracing run in this interpreter's
environment; each peer runs in its own uv environment (same Python, same anthropic version) under `--envs`.

Per configuration and path: median and minimum seconds per repetition, the instrumented/bare ratio paired
round by round (ratio of the two processes' minima; the table shows the median over rounds), the added
microseconds per event on a 2,000-event stream ("long"), and the added microseconds per stream on 20-event
streams ("short", the fixed cost); the same two for the process's CPU time over every thread, the metric
collection and /metrics scrape after each repetition included (what a reader thread or scraper spends on what
the repetition recorded); and the time to collect the metrics the run recorded (OpenTelemetry reader
collection, plus bedrock_otel's /metrics text where it records into Prometheus). Then `footprint.py` (memory per
in-flight stream, /metrics scrape time at full cardinality and on a realistic mix).
Prints tables and writes everything to `--json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import replay

HERE = Path(__file__).parent
CONFIGS = tuple(name for name in replay.CONFIGURATIONS if name != replay.BARE.name)
PEERS = tuple(name for name in CONFIGS if replay.CONFIGURATIONS[name].requirements)  # each in its own env


def peer_python(name: str, envs: Path, sdk: str) -> Path:
    """The interpreter of a peer's own environment, built with uv on first use (same Python, same SDK)."""
    directory = envs / f"{name.replace(' ', '-')}-anthropic-{sdk}"
    python = directory / "bin" / "python"
    if python.exists():
        return python
    uv = shutil.which("uv")
    if uv is None:
        sys.exit("compare.py needs uv to build the peers' environments: python -m pip install uv "
                 "(or leave the peers out of --configs)")
    version = ".".join(map(str, sys.version_info[:2]))
    subprocess.run([uv, "venv", "-q", "-p", version, str(directory)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), f"anthropic[bedrock]=={sdk}",
                    "opentelemetry-sdk", *replay.CONFIGURATIONS[name].requirements], check=True)
    return python


def run_one(python: Path | str, config: str, bodies: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [str(python), str(HERE / "replay.py"), config, str(bodies), "--reps", str(args.reps),
               "--paths", args.paths, "--workloads", args.workloads]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{config}: replay.py failed\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def schedule(args: argparse.Namespace, bodies: Path) -> dict[str, Any]:
    """Run every (bare, configuration) pair `args.rounds` times; return the raw seconds per process."""
    sdk = replay.anthropic.__version__
    environments: list[tuple[Path | str, list[str]]] = []
    here = [c for c in args.configs if c not in PEERS and replay.sdk_version() >= replay.CONFIGURATIONS[c].min_sdk]
    if here:
        environments.append((sys.executable, here))
    for peer in (c for c in args.configs if c in PEERS):
        environments.append((peer_python(peer, args.envs, sdk), [peer]))
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)  # config -> one {"bare": ..., "config": ...} per round
    for round_number in range(args.rounds):
        for python, configs in environments:
            for config in configs:
                order = ("bare", config) if round_number % 2 == 0 else (config, "bare")
                pair = {name: run_one(python, name, bodies, args) for name in order}
                runs[config].append({"bare": pair["bare"]["seconds"], "config": pair[config]["seconds"],
                                     "bare_cpu": pair["bare"]["cpu_seconds"], "cpu": pair[config]["cpu_seconds"],
                                     "anthropic": pair[config]["anthropic"],
                                     "scrape_ms": pair[config].get("scrape_ms")})
        print(f"  round {round_number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return runs


def summarize(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for config, pairs in runs.items():
        for workload, (events, streams) in replay.WORKLOADS.items():
            for path in pairs[0]["config"].get(workload, {}):
                bare = [p["bare"][workload][path] for p in pairs]
                inst = [p["config"][workload][path] for p in pairs]
                ratios = [min(i) / min(b) for i, b in zip(inst, bare)]
                added = [min(i) - min(b) for i, b in zip(inst, bare)]
                cpu_added = [min(i) - min(b) for i, b in zip((p["cpu"][workload][path] for p in pairs),
                                                             (p["bare_cpu"][workload][path] for p in pairs))]
                flat_bare = [t for times in bare for t in times]
                flat_inst = [t for times in inst for t in times]
                rows.append({
                    "config": config, "workload": workload, "path": path, "events": events, "streams": streams,
                    "bare_median_ms": statistics.median(flat_bare) * 1e3, "bare_min_ms": min(flat_bare) * 1e3,
                    "median_ms": statistics.median(flat_inst) * 1e3, "min_ms": min(flat_inst) * 1e3,
                    "paired_ratio": statistics.median(ratios), "ratio_spread": [min(ratios), max(ratios)],
                    "us_per_event": statistics.median(added) / (events * streams) * 1e6,
                    "us_per_stream": statistics.median(added) / streams * 1e6, "rounds": len(pairs),
                    "cpu_us_per_event": statistics.median(cpu_added) / (events * streams) * 1e6,
                    "cpu_us_per_stream": statistics.median(cpu_added) / streams * 1e6,
                    "scrape_ms": statistics.median([p["scrape_ms"] for p in pairs if p.get("scrape_ms") is not None]
                                                   or [float("nan")]),
                })
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    for workload, unit in (("long", "us_per_event"), ("short", "us_per_stream")):
        selected = [r for r in rows if r["workload"] == workload]
        if not selected:
            continue
        events, streams = replay.WORKLOADS[workload]
        print(f"\n{workload}: {streams} stream(s) of {events} events per repetition; "
              f"added {'µs per event' if unit == 'us_per_event' else 'µs per stream'}")
        print(f"{'configuration':<27}{'path':<26}{'bare med':>9}{'med ms':>9}{'min ms':>9}{'ratio':>8}"
              f"{'spread':>14}{'added':>9}")
        for r in selected:
            spread = f"{r['ratio_spread'][0]:.3f}-{r['ratio_spread'][1]:.3f}"
            print(f"{r['config']:<27}{r['path']:<26}{r['bare_median_ms']:>9.2f}{r['median_ms']:>9.2f}"
                  f"{r['min_ms']:>9.2f}{r['paired_ratio']:>8.3f}{spread:>14}{r[unit]:>+9.2f}")


def print_summary(rows: list[dict[str, Any]]) -> None:
    """One line per configuration, mean over the sync/async and create/helper paths of each provider."""
    print("\n| configuration | first-party ratio | µs/event | Bedrock ratio | µs/event "
          "| fixed µs/stream (first-party / Bedrock) | CPU µs/event, all threads (first-party / Bedrock) "
          "| CPU µs/stream, all threads | metrics collection ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    by_config: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_config[r["config"]].append(r)

    def mean(config_rows: list[dict[str, Any]], workload: str, provider: str, key: str, form: str) -> str:
        values = [r[key] for r in config_rows if r["workload"] == workload and r["path"].startswith(provider)]
        return format(statistics.mean(values), form) if values else "-"

    for config, config_rows in by_config.items():
        cells = []
        for provider in replay.PROVIDERS:
            cells += [mean(config_rows, "long", provider, "paired_ratio", ".3f"),
                      mean(config_rows, "long", provider, "us_per_event", "+.2f")]
        short = " / ".join(mean(config_rows, "short", p, "us_per_stream", "+.0f") for p in replay.PROVIDERS)
        cpu_long = " / ".join(mean(config_rows, "long", p, "cpu_us_per_event", "+.2f") for p in replay.PROVIDERS)
        cpu_short = " / ".join(mean(config_rows, "short", p, "cpu_us_per_stream", "+.0f") for p in replay.PROVIDERS)
        scrape = statistics.median(r["scrape_ms"] for r in config_rows)
        print(f"| {config} | {' | '.join(cells)} | {short} | {cpu_long} | {cpu_short} | {scrape:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per process (after one warm-up)")
    parser.add_argument("--paths", default=",".join(replay.PATHS))
    parser.add_argument("--workloads", default=",".join(replay.WORKLOADS))
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of: {', '.join(CONFIGS)}")
    parser.add_argument("--envs", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "bedrock_otel-benchmarks", help="where the peers' uv environments live")
    parser.add_argument("--footprint", default="--streams 1000 --waves 5 --models 20 --scrapes 50",
                        help="footprint.py's arguments, or none")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "compare.json")
    args = parser.parse_args()
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(args.configs) - set(CONFIGS))
    if unknown or not args.configs:
        parser.error(f"--configs: unknown {', '.join(unknown) or 'none given'}; accepted values: {', '.join(CONFIGS)}")
    started = time.time()
    print(f"anthropic {replay.anthropic.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs; "
          f"{args.rounds} rounds x {args.reps} repetitions per process", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp)
        replay.write_bodies(bodies)
        runs = schedule(args, bodies)
        footprint = None
        if args.footprint != "none":
            out = bodies / "footprint.json"
            subprocess.run([sys.executable, str(HERE / "footprint.py"), *args.footprint.split(), "--json", str(out)],
                           check=True)
            footprint = json.loads(out.read_text())
    rows = summarize(runs)
    print_table(rows)
    print_summary(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d", time.gmtime(started)), "anthropic": replay.anthropic.__version__,
        "python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
        "rounds": args.rounds, "reps": args.reps, "minutes": (time.time() - started) / 60,
        "rows": rows, "footprint": footprint, "raw": runs,
    }, indent=1))
    print(f"\nwrote {args.json} ({(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
