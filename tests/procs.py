"""Child Python processes for tests that need a fresh interpreter (auto-instrumentation, exporters, forks)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).parent


def child_env(**env: str) -> dict[str, str]:
    """The test's environment plus `env`, with the tests folder importable (driver, expectations)."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    # children that deliver to a healthy loopback receiver get room for their exit flush on a loaded machine; the
    # tests of the exit bound (test_backend_outage.py) pass the bound they test
    inherited = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}  # see conftest.py
    return {**inherited, "PYTHONPATH": path, "BEDROCK_OTEL_EXPORT_EXIT_TIMEOUT": "30", **env}


def run_python(code: str, *prefix: str, timeout: float = 120, **env: str) -> str:
    """Run `code` in a child interpreter (after `prefix`, e.g. a launcher); return stdout, fail on rc != 0."""
    result = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                            env=child_env(**env))
    assert result.returncode == 0, f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def prometheus_tool(name: str, package: str = "prometheus") -> str:
    """The path of a binary of a Debian package (`prometheus`, `prometheus-alertmanager`); skip with how to install
    it, fail in CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed: apt-get install {package} (.ci/run installs it)"
        if os.environ.get("BEDROCK_OTEL_REQUIRE_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextmanager
def popen(args: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    """A child process with text pipes that is killed, not waited for forever, if the test fails."""
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)
