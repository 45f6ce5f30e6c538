"""The anthropic SDK's own tests for streaming, retries and clients, run twice on the installed SDK: bare, and with
bedrock_otel instrumenting at start-up (`-p bedrock_otel.auto`) in retry mode. The results must be the same, test
by test, except for the tests listed in `CHANGED_BY_RETRY`, which assert the very behaviour retry mode is
documented to change, and which must then fail (so the list cannot go stale).

    python tests/sdk_suite.py WORKDIR        # `nox -s sdk_suite` runs it on the newest SDK of the matrix

The SDK's test dependencies (respx, pytest-asyncio, time-machine, ...) must be installed; see noxfile.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import anthropic

TEST_PATHS = ("tests/test_streaming.py", "tests/test_client.py", "tests/test_middleware.py", "tests/test_response.py",
              "tests/lib/streaming", "tests/lib/test_bedrock.py", "tests/lib/test_vertex.py")

# SDK test -> why it fails in retry mode. Each asserts what a stream that opens (before any content) with a
# retryable in-band error raises; retry mode retries that stream instead (docs/architecture.md, "Retry mode").
CHANGED_BY_RETRY = {
    "tests.lib.test_bedrock::test_stream_raises_api_error_for_error_frame[exception-sync]":
        "a throttlingException frame right after message_start: retried, then RateLimitError, not APIStatusError(200)",
    "tests.lib.test_bedrock::test_stream_raises_api_error_for_error_frame[exception-async]":
        "the same, async",
}


def sdist(workdir: Path) -> Path:
    """The installed SDK version's source distribution, unpacked, without its package (the installed one runs)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    "--dest", str(workdir), f"anthropic=={anthropic.__version__}"], check=True)
    archive = next(workdir.glob(f"anthropic-{anthropic.__version__}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(workdir)
    root = workdir / f"anthropic-{anthropic.__version__}"
    shutil.rmtree(root / "src" / "anthropic")
    return root


def outcomes(root: Path, report: Path, *plugin: str, **env: str) -> dict[str, str]:
    """Run the SDK's tests; test id -> passed, failed, skipped or error."""
    paths = [p for p in TEST_PATHS if (root / p).exists()]
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", *plugin, *paths,
                    f"--junitxml={report}"], cwd=root, env={**os.environ, **env}, check=False,
                   stdout=subprocess.DEVNULL)
    results = {}
    for case in ET.parse(report).iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
        results[f"{case.get('classname')}::{case.get('name')}"] = outcome
    return results


def main() -> int:
    workdir = Path(sys.argv[1]).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    root = sdist(workdir)
    bare = outcomes(root, workdir / "bare.xml")
    retry = outcomes(root, workdir / "retry.xml", "-p", "bedrock_otel.auto", BEDROCK_OTEL_RETRY="1",
                     BEDROCK_OTEL_PROMETHEUS_PORT="off")
    assert bare.keys() == retry.keys(), sorted(bare.keys() ^ retry.keys())
    differ = {test: (bare[test], retry[test]) for test in bare if bare[test] != retry[test]}
    expected = {test: ("passed", "failed") for test in CHANGED_BY_RETRY if test in bare}
    print(f"anthropic {anthropic.__version__}: {len(bare)} SDK tests; bare {_count(bare)}; retry mode {_count(retry)}")
    for test, (was, now) in sorted(differ.items()):
        print(f"  {test}: {was} bare, {now} in retry mode ({CHANGED_BY_RETRY.get(test, 'NOT EXPECTED')})")
    wrong = {test for test in differ.keys() | expected.keys() if differ.get(test) != expected.get(test)}
    print(f"sdk_suite: {len(bare) - len(wrong)} passed, {len(wrong)} failed")  # as bare, or the documented change
    return 1 if wrong else 0


def _count(results: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for outcome in results.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))


if __name__ == "__main__":
    sys.exit(main())
