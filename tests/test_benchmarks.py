"""Keep the benchmark harnesses working (tiny sizes; timing is never asserted in tests: figures come from
`python benchmarks/compare.py` on a quiet machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sdk_independent  # see noxfile.py: the two ends of the Python range, and the floors

ROOT = Path(__file__).parent.parent
OURS = {"bedrock_otel", "bedrock_otel metrics-only", "bedrock_otel spans-only"}
TINY = ["--rounds", "1", "--reps", "1", "--footprint", "--streams 20 --waves 2 --models 2 --scrapes 2"]


def _compare(tmp_path: Path, *args: str) -> tuple[str, dict]:
    out = tmp_path / "compare.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare.py"), *TINY, *args, "--json", str(out)],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads(out.read_text())


@pytest.mark.heavy  # ~50 s of benchmark loops on one core: once per CI run, not at every Python and floor
def test_compare_runs_every_configuration_of_ours_paired_with_bare(tmp_path: Path) -> None:
    paths = "first_party/create/sync,bedrock/helper/async"
    ours = "bedrock_otel,bedrock_otel metrics-only,bedrock_otel spans-only,sdk built-in tracing"
    stdout, report = _compare(tmp_path, "--configs", ours, "--paths", paths)
    rows = report["rows"]
    configs = {r["config"] for r in rows}
    assert OURS <= configs and not configs - OURS - {"sdk built-in tracing"}
    for config in configs:  # both workloads, both paths, each with its own bare pair and positive times
        cells = {(r["workload"], r["path"]) for r in rows if r["config"] == config}
        assert cells == {(w, p) for w in ("long", "short") for p in paths.split(",")}
    for row in rows:
        assert row["bare_min_ms"] > 0 and row["min_ms"] > 0 and row["paired_ratio"] > 0
        assert row["rounds"] == 1
    assert "µs per event" in stdout and "| bedrock_otel |" in stdout
    memory, scrape = report["footprint"]["memory"], report["footprint"]["scrape"]
    assert memory["bedrock_otel_bytes_per_stream"] > 0 and len(memory["heap_after_each_wave"]) == 2
    assert scrape["series"] > 0 and scrape["samples"] > scrape["series"] and scrape["median_ms"] > 0


@pytest.mark.heavy
def test_the_floor_makes_the_default_telemetry_by_hand_and_every_thread_is_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The floor configuration: one span and the default's metrics for a stream, with no bedrock_otel; compare.py
    reports the process's CPU time (every thread) beside the stream loop's."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import replay
    pipeline = replay.Pipeline.build()
    wrap = replay.CONFIGURATIONS["floor"].wrap(pipeline)
    client = replay.make_client("first_party", False, replay.make_body("first_party", 20), {})
    replay.stream_runner("first_party/create/sync", client, 2, wrap)()
    assert [s.name for s in pipeline.spans.get_finished_spans()] == ["chat claude-opus-4-7"] * 2
    data = pipeline.metrics.get_metrics_data()
    points = {m.name: m.data.data_points for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert [p.count for p in points["gen_ai.client.operation.time_per_output_chunk"]] == [2 * 14]  # 15 deltas each
    assert sum(p.value for p in points["anthropic.streams"]) == 2

    _stdout, report = _compare(tmp_path, "--configs", "floor", "--paths", "first_party/create/sync", "--footprint",
                               "none")
    rows = {r["workload"]: r for r in report["rows"]}
    assert rows.keys() == {"long", "short"} and all(r["config"] == "floor" for r in rows.values())
    assert rows["long"]["cpu_us_per_event"] == rows["long"]["cpu_us_per_event"]  # a number, not NaN
    assert report["raw"]["floor"][0]["cpu"]["short"]["first_party/create/sync"][0] > 0


@pytest.mark.heavy
def test_compare_runs_every_peer_in_its_own_environment(tmp_path: Path) -> None:
    """Builds the peers' uv environments (PyPI) on first use; run in the heavy session."""
    peers = {"traceloop", "openinference", "otel genai-anthropic", "logfire"}
    _stdout, report = _compare(tmp_path, "--configs", ",".join(sorted(peers)), "--paths", "first_party/create/sync",
                               "--workloads", "long", "--footprint", "none", "--envs", str(tmp_path / "envs"))
    assert {r["config"] for r in report["rows"]} == peers


def test_multiprocess_scrape_measures_dead_workers_before_and_after_child_exit() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "multiprocess_scrape.py"), "--workers", "3",
                             "--streams", "1", "--scrapes", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = [line.split() for line in result.stdout.splitlines()[1:]]
    assert row[0] == "3" and int(row[1]) > int(row[4]) > 0  # child_exit removed files, not all of them


@pytest.mark.heavy
def test_backend_outage_compares_the_bare_sdk_pipeline_with_ours(tmp_path: Path) -> None:
    out = tmp_path / "outage.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "backend_outage.py"), "--modes", "refuse",
                             "--protocols", "http/protobuf", "--json", str(out)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["sdk_s"] > 0 and row["bedrock_otel_s"] > 0


def test_boto3_cost_times_both_apis_bare_and_instrumented(tmp_path: Path) -> None:
    out = tmp_path / "boto3.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "boto3_cost.py"), "--rounds", "1", "--reps", "2",
                             "--long", "40", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert set(figures) == {"boto3_invoke", "boto3_converse"}
    assert all(set(f) == {"per_stream_us", "per_event_us"} for f in figures.values())
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["boto3_invoke", "boto3_converse"]


@pytest.mark.heavy  # valgrind runs the interpreter ~50 times slower: over a minute even at this size
def test_instruction_counts_per_stream_come_out_for_each_configuration(tmp_path: Path) -> None:
    """The harness end to end, on one configuration: its two runs (~70 s each under valgrind, mostly the
    interpreter's start-up and imports) side by side."""
    out = tmp_path / "instructions.json"
    # GC off: at 2 and 6 streams a cyclic collection that falls in one run and not the other outweighs the
    # streams (CI once saw -62,180 instructions per stream); with it off the difference is the streams alone
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "instructions.py"), "--configs", "hooks",
                             "--streams", "2", "--warmup", "1", "--gc", "off", "--json", str(out)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert set(figures) == {"hooks"} and figures["hooks"]["Ir"] > 100_000  # a stream is ~5 M instructions
    assert "instructions over bare" in result.stdout and "hooks" in result.stdout
