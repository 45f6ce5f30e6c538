"""The anthropic SDK's own offline test suite on the installed SDK: instrumented (`-p bedrock_otel.auto`), bare, and
instrumented in retry mode. Each test must end the same way in all three, except the tests in `DOCUMENTED`, which
assert the very behaviour a mode is documented to change and must then differ (so the list cannot go stale).

    python tests/sdk_suite.py requirements WORKDIR  # writes WORKDIR/requirements.txt: the SDK's test tools
    python tests/sdk_suite.py run WORKDIR           # `nox -s sdk_suite` does both, on every SDK version of the matrix

Every test file of the SDK's sdist (all of `tests/` but `tests/api_resources`, which needs a mock API server) runs
on the oldest and on the newest SDK of the matrix that ship it: the newest version runs all of its files, every other
version the files its neighbours in the matrix do not both have.

Every test runs instrumented. The plugin notes the tests in which bedrock_otel observed a streamed call, the only
place retry mode acts; those run again in retry mode. Then bare runs every test that did not pass in one of the two
modes, and every test of `DOCUMENTED`: the baseline each difference is judged against. A test that passes
instrumented is not run bare: bedrock_otel hands the caller what the SDK returned or raised, unchanged, so what it
could do to a test is make it fail, not pass (2.16.0: ~7,400 tests instrumented, ~950 in retry mode, ~80 bare: 5
minutes, against 10.5 for all three modes on every test).

A test whose outcome differs from bare is run again, alone, bare and in that mode, up to `RERUNS` times; it counts as
a difference only if each mode ends it the same way every time (some of the SDK's tests are not deterministic).
This file is also the pytest plugin that records each test's outcome.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

PLUGIN_OUTPUT = "SDK_SUITE_OUTCOMES"  # where the plugin writes {"outcomes": {test id: outcome}, "streamed": [...]}
PLUGIN_SELECT = "SDK_SUITE_SELECT"  # a file of test ids: the plugin deselects every other test
STREAMED = ("bedrock_otel", "observed a streamed call")  # the user property of a test where bedrock_otel saw one
MODES = {"bare": ((), {}),
         "instrumented": (("-p", "bedrock_otel.auto"), {"BEDROCK_OTEL_PROMETHEUS_PORT": "off"}),
         "retry": (("-p", "bedrock_otel.auto"), {"BEDROCK_OTEL_PROMETHEUS_PORT": "off", "BEDROCK_OTEL_RETRY": "1"})}

# mode -> SDK test -> why it ends differently there: each asserts what retry mode is documented to change
# (docs/architecture.md, "Retry mode").
_RETRIED = ("retried: an in-band error before any content (here right after message_start); the test's mock has no "
            "response for a second attempt, or expects the 200's APIStatusError where the retry ends in RateLimitError")
_OTEL = "tests/test_open_telemetry.py::TestCallSpans::"
DOCUMENTED = {"retry": {
    **dict.fromkeys([
        "tests/lib/test_bedrock.py::test_stream_raises_api_error_for_error_frame[exception-sync]",
        "tests/lib/test_bedrock.py::test_stream_raises_api_error_for_error_frame[exception-async]",
        f"{_OTEL}test_stream_parsed_from_a_raw_response_is_recorded_like_a_stream[error event-stable]",
        f"{_OTEL}test_stream_parsed_from_a_raw_response_is_recorded_like_a_stream[error event-beta]",
        f"{_OTEL}test_async_stream_parsed_from_a_raw_response_is_recorded_like_a_stream[error event-stable]",
        f"{_OTEL}test_async_stream_parsed_from_a_raw_response_is_recorded_like_a_stream[error event-beta]",
        f"{_OTEL}test_stream_over_a_body_that_was_read_before_the_call_returned[error event]",
        f"{_OTEL}test_async_stream_over_a_body_that_was_read_before_the_call_returned[error event]",
    ], _RETRIED),
    f"{_OTEL}test_stream_closed_from_another_thread_while_it_is_read[traced]":
        "create() returns at the first content event: this body stalls after message_start, so the stall is read "
        "inside create(), and the read the test closes from another thread never reached the caller (a stream closed "
        "while the caller reads it is as bare: tests/test_retry.py)",
}}

# How many times a test that ends differently from bare is run again, alone, in both modes: it counts only if it
# ends the same way every time in each mode. Some of the SDK's tests are not deterministic: 0.49.0's
# `test_copy_build_request` is a tracemalloc leak check that fails or passes from one run to the next, bare as well
# (run alone: bare failed 10 of 12 runs, instrumented 3 of 4).
RERUNS = 3

# What the SDK's tests need; the versions its requirements-dev.lock pins, where it pins them (the tests of a release
# are written against those)
TEST_TOOLS = ("pytest", "pytest-asyncio", "pytest-xdist", "respx", "time-machine", "dirty-equals", "inline-snapshot",
              "http-snapshot[httpx]", "nest-asyncio", "hypothesis", "rich", "griffe", "google-auth")


# --- the pytest plugin ---------------------------------------------------------------------------------------------

_outcomes: dict[str, str] = {}
_streamed: set[str] = set()
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
_running: list[Any] = []  # the test item running now in this process


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    """Instrumented (bedrock_otel.auto loaded): mark each test item in which a streamed call was observed."""
    runtime = sys.modules.get("bedrock_otel.runtime")
    if runtime is None:
        return
    start_call, observer = runtime.Runtime.start_call, runtime.StreamObserver

    def noting_start_call(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        call = start_call(self, *args, **kwargs)
        if (call is not None and isinstance(call.ctx, observer) and _running
                and STREAMED not in _running[0].user_properties):
            _running[0].user_properties.append(STREAMED)
        return call

    runtime.Runtime.start_call = noting_start_call


def pytest_collection_modifyitems(config, items) -> None:  # type: ignore[no-untyped-def]
    if not os.environ.get(PLUGIN_SELECT):
        return
    wanted = set(Path(os.environ[PLUGIN_SELECT]).read_text().split("\n"))
    config.hook.pytest_deselected(items=[item for item in items if item.nodeid not in wanted])
    items[:] = [item for item in items if item.nodeid in wanted]


def pytest_runtest_protocol(item, nextitem) -> None:  # type: ignore[no-untyped-def]
    _running[:] = [item]


def pytest_runtest_logreport(report) -> None:  # type: ignore[no-untyped-def]
    """Keep the worst of a test's setup, call and teardown (xdist hands the controller every worker's reports)."""
    if STREAMED in (tuple(p) for p in report.user_properties):
        _streamed.add(report.nodeid)
    if report.failed:
        outcome = "failed" if report.when == "call" else "error"
    elif report.skipped:
        outcome = "skipped"
    elif report.when == "call":
        outcome = "passed"
    else:
        return
    if _RANK[outcome] >= _RANK.get(_outcomes.get(report.nodeid, ""), -1):
        _outcomes[report.nodeid] = outcome


def pytest_sessionfinish(session) -> None:  # type: ignore[no-untyped-def]
    if not hasattr(session.config, "workerinput") and os.environ.get(PLUGIN_OUTPUT):
        observing = "bedrock_otel.runtime" in sys.modules
        Path(os.environ[PLUGIN_OUTPUT]).write_text(json.dumps(
            {"outcomes": _outcomes, "streamed": sorted(_streamed) if observing else None}))


# --- the run -------------------------------------------------------------------------------------------------------

def sdist(version: str, workdir: Path) -> Path:
    """An SDK version's source distribution, downloaded once into workdir."""
    archive = workdir / f"anthropic-{version}.tar.gz"
    if not archive.exists():
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                               "--disable-pip-version-check", "--dest", str(workdir), f"anthropic=={version}"],
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"sdk_suite: could not download anthropic {version}'s sdist:\n{done.stderr}")
    return archive


def test_files(archive: Path) -> set[str]:
    """The offline test files an sdist ships (tests/api_resources needs a mock API server, Prism)."""
    with tarfile.open(archive) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    return {name for name in names if name.startswith("tests/") and not name.startswith("tests/api_resources/")
            and re.search(r"(^|/)test_[^/]*\.py$", name)}


def unpack(archive: Path, workdir: Path) -> Path:
    """The sdist unpacked, without its package (the installed one runs)."""
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(workdir)
    root = workdir / archive.name.removesuffix(".tar.gz")
    shutil.rmtree(root / "src" / "anthropic")
    return root


def files_to_run(installed: str, matrix: tuple[str, ...], workdir: Path) -> list[str]:
    """The installed version's files that it is the oldest or the newest version of the matrix to ship."""
    mine = test_files(sdist(installed, workdir))
    if installed == matrix[-1]:
        return sorted(mine)
    at = matrix.index(installed)
    neighbours = [matrix[i] for i in (at - 1, at + 1) if 0 <= i < len(matrix)]
    both = set.intersection(*(test_files(sdist(version, workdir)) for version in neighbours))
    return sorted(mine - both)


def requirements(root: Path) -> list[str]:
    """The test tools, at the versions the SDK's lock pins."""
    lock = root / "requirements-dev.lock"
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock.read_text(), re.M)) if lock.exists() else {}
    return [f"{tool}=={pinned[name]}" if name in pinned else tool
            for tool, name in ((tool, tool.split("[")[0]) for tool in TEST_TOOLS)]


def run(root: Path, workdir: Path, mode: str, tests: list[str], label: str,
        select: set[str] | None = None) -> tuple[dict[str, str], set[str]]:
    """Run tests (files or test ids; of them only `select`, if given) in a mode: test id -> passed, failed, skipped or
    error, and (instrumented) the tests in which a streamed call was observed."""
    plugin, env = MODES[mode]
    output = workdir / f"{label}-{mode}.json"
    output.unlink(missing_ok=True)
    if select is not None:
        (workdir / f"{label}-{mode}.select").write_text("\n".join(sorted(select)))
        env = {**env, PLUGIN_SELECT: str(workdir / f"{label}-{mode}.select")}
    parallel = ("-n", "0") if "rerun" in label else ("-n", "2")  # a rerun of a few tests: in one process
    shutil.copy(__file__, workdir / "sdk_suite_outcomes.py")  # this file as a plugin, importable on its own
    path = os.pathsep.join(filter(None, [str(workdir), os.environ.get("PYTHONPATH")]))
    with open(workdir / f"{label}-{mode}.log", "w") as log:  # pytest's report, for a look at a failing test
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                        *parallel, "-p", "sdk_suite_outcomes", *plugin, *tests], cwd=root, check=False, stdout=log,
                       env={**os.environ, **env, PLUGIN_OUTPUT: str(output), "PYTHONPATH": path})
    if not output.exists():
        raise SystemExit(f"sdk_suite: pytest wrote no outcomes in {mode} mode (see {log.name})")
    written = json.loads(output.read_text())
    if plugin and written["streamed"] is None:
        raise SystemExit(f"sdk_suite: bedrock_otel was not loaded in {mode} mode (see {log.name})")
    return written["outcomes"], set(written["streamed"] or ())


def main(command: str, workdir: Path) -> int:
    import anthropic

    workdir.mkdir(parents=True, exist_ok=True)
    root = unpack(sdist(anthropic.__version__, workdir), workdir)
    if command == "requirements":
        (workdir / "requirements.txt").write_text("\n".join(requirements(root)) + "\n")
        return 0
    from bedrock_otel.support import TESTED_ANTHROPIC  # here: the plugin, this same file, must not import it bare

    newest = anthropic.__version__ == TESTED_ANTHROPIC[-1]
    files = files_to_run(anthropic.__version__, TESTED_ANTHROPIC, workdir)
    if not files:
        print(f"sdk_suite: anthropic {anthropic.__version__} ships no test file that its neighbours lack")
        return 0
    print(f"anthropic {anthropic.__version__}: {len(files)} test files: {' '.join(files)}")
    instrumented, streamed = run(root, workdir, "instrumented", files, "all")
    retry = run(root, workdir, "retry", _files(streamed), "streamed", streamed)[0] if streamed else {}
    results = {"instrumented": instrumented, "retry": retry}
    compared = {test for outcomes in results.values() for test, outcome in outcomes.items() if outcome != "passed"}
    compared |= {test for mode, tests in DOCUMENTED.items() for test in tests if test in results[mode]}
    bare = run(root, workdir, "bare", _files(compared), "compared", compared)[0] if compared else {}
    print(f"{len(instrumented)} SDK tests instrumented: {_count(instrumented)}; {len(streamed)} with a streamed "
          f"call in retry mode: {_count(retry)}; {len(compared)} that did not pass or are documented to differ, "
          f"bare: {_count(bare)}")
    wrong = sum(differences(root, workdir, mode, bare, results[mode], newest) for mode in results)
    if retry.keys() != streamed or bare.keys() != compared:
        print(f"  retry mode or bare ran other tests than those asked: {sorted(retry.keys() ^ streamed)} "
              f"{sorted(bare.keys() ^ compared)}")
        wrong += 1
    print(f"sdk_suite: {len(instrumented)} tests, {wrong} unexplained differences")
    return 1 if wrong else 0


def _files(tests: set[str]) -> list[str]:
    return sorted({test.split("::")[0] for test in tests})


def differences(root: Path, workdir: Path, mode: str, bare: dict[str, str], seen: dict[str, str], newest: bool) -> int:
    """Print how a mode's outcomes differ from bare (a test not run bare passed in the mode); return how many of
    those the documentation does not explain."""
    wrong = 0
    documented = {test: why for test, why in DOCUMENTED.get(mode, {}).items() if test in bare}
    differ = {test for test in bare if test in seen and seen[test] != bare[test]}
    again = differ - documented.keys()
    for attempt in range(RERUNS):  # alone, bare and in this mode: a test that ends both ways in a mode is a flake
        if not again:
            break
        label = f"{mode}-rerun{attempt + 1}"
        bare_again, seen_again = (run(root, workdir, m, sorted(again), label)[0] for m in ("bare", mode))
        flaked = {test for test in again if (bare_again.get(test), seen_again.get(test)) != (bare[test], seen[test])}
        for test in sorted(flaked):
            print(f"  {test}: {bare[test]} bare, {seen[test]} {mode}; on rerun {attempt + 1} "
                  f"{bare_again.get(test)} bare, {seen_again.get(test)} {mode} (a flake)")
        differ -= flaked
        again -= flaked
    for test in sorted(differ | documented.keys()):
        why = documented.get(test, "NOT DOCUMENTED") if test in differ else "documented to differ, but did not"
        print(f"  {test}: {bare[test]} bare, {seen.get(test)} {mode} ({why})")
        wrong += (test in differ) != (test in documented)
    if newest:  # every documented test exists in the newest SDK: a renamed one would make the list stale
        for test in sorted(DOCUMENTED.get(mode, {}).keys() - seen.keys()):
            print(f"  {test}: documented for {mode} mode, but not run in it (renamed, or no call observed)")
            wrong += 1
    return wrong


def _count(results: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for outcome in results.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("requirements", "run"):
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], Path(sys.argv[2]).resolve()))
