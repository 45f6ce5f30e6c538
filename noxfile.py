"""Test sessions: lint, and the whole suite against each supported anthropic SDK version (isolated uv venvs).

    python -m pip install nox uv && python -m nox           # everything (what .ci/run does)
    python -m nox -s "tests(anthropic='0.97.0')"             # one SDK version
    python -m nox -s heavy                                   # the scale tests (cardinality, reduced soak)
    python -m nox -s floors                                  # the lowest versions pyproject.toml allows
    python -m nox -s sdk_suite                               # the SDK's own tests, bare and in retry mode
"""

from __future__ import annotations

import re

import nox
import tomllib

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
# The support range's landmarks (see README "Supported SDK versions"): the #1472 decoder fix (0.110), the
# httpx2 switch (1.0), the lazy copy()-based stream iterator and built-in tracing (1.14), and the newest.
SDK_VERSIONS = ["0.25.9", "0.49.0", "0.97.0", "0.109.2", "0.110.0", "0.125.0", "1.0.0", "1.13.0", "1.14.0",
                "2.0.0", "2.14.0"]


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "examples", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
@nox.parametrize("anthropic", SDK_VERSIONS)
def tests(session: nox.Session, anthropic: str) -> None:
    """The suite on one SDK version. The modules marked sdk_independent (exporters, endpoint, dashboards, fork
    handling, the benchmark harness: what they test does not change with the SDK) run at both ends of the range,
    httpx and httpx2, and at the floors; the SDK-behaviour suites run on every version."""
    extra = ["httpx<0.28"] if anthropic.startswith(("0.2", "0.3")) else []
    session.install("-e", ".[test]", f"anthropic[bedrock]=={anthropic}", *extra)
    ends = anthropic in (SDK_VERSIONS[0], SDK_VERSIONS[-1])
    marks = "not heavy" if ends else "not heavy and not sdk_independent"
    session.run("python", "-m", "pytest", "-q", "-p", "no:randomly", "-m", marks, *session.posargs,
                env={"BEDROCK_OTEL_EXPECT_ANTHROPIC": anthropic})


@nox.session(python=PYTHON)
def heavy(session: nox.Session) -> None:
    """Scale tests (10,000-model cardinality, the soak in a reduced size) once, on the newest SDK."""
    session.install("-e", ".[test]", f"anthropic[bedrock]=={SDK_VERSIONS[-1]}")
    session.run("python", "-m", "pytest", "-q", "-s", "-p", "no:randomly", "-m", "heavy", *session.posargs)


# What the SDK's own test suite needs (its dev dependencies, as far as the tests run by tests/sdk_suite.py go)
SDK_TEST_DEPENDENCIES = ["respx", "pytest-asyncio", "pytest-xdist", "time-machine", "dirty-equals>=0.6.0",
                         "inline-snapshot>=0.28.0", "http-snapshot[httpx]==0.1.9", "rich", "griffe"]


@nox.session(python=PYTHON)
def sdk_suite(session: nox.Session) -> None:
    """The SDK's own streaming, retry and client tests, bare and with bedrock_otel in retry mode (newest SDK)."""
    session.install("-e", ".[test]", f"anthropic[bedrock,aiohttp]=={SDK_VERSIONS[-1]}", "pip", *SDK_TEST_DEPENDENCIES)
    session.run("python", "tests/sdk_suite.py", session.create_tmp())


def _floors() -> list[str]:
    """pyproject.toml's runtime dependencies pinned to the lowest version each allows (`>=X` becomes `==X`)."""
    with open("pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    return [re.sub(r">=\s*", "==", dependency) for dependency in dependencies]


@nox.session(python=PYTHON)
def floors(session: nox.Session) -> None:
    """The suite with every runtime dependency at its declared minimum, so the floors are true (newest SDK)."""
    session.install("-e", ".[test]", f"anthropic[bedrock]=={SDK_VERSIONS[-1]}", *_floors())
    session.run("python", "-m", "pytest", "-q", "-p", "no:randomly", "-m", "not heavy", *session.posargs)
