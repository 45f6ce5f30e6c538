"""Keep the benchmark harness working (tiny size; timing is never asserted in tests)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_overhead_benchmark_runs_and_prints_its_table() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "overhead.py"), "--events", "40", "--reps", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "first-party" in result.stdout and "bedrock" in result.stdout and "µs/event" in result.stdout
