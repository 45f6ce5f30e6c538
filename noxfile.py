"""Test sessions: lint, and the whole suite against each supported anthropic SDK version and Python (isolated uv
venvs). The matrix comes from src/bedrock_otel/support.py, which `bedrock-otel doctor` reports too.

    python -m pip install nox uv && python -m nox           # everything (what .ci/run does)
    python -m nox -s "tests(anthropic='0.97.0')"             # one SDK version on the default Python
    python -m nox -s "pythons(python='3.9', anthropic='0.25.9')"   # one SDK version on another Python
    python -m nox -s newest                                  # whatever anthropic release is newest today
    python -m nox -s "botocore(botocore='1.31.57')"          # the boto3 suite on an older botocore
    python -m nox -s heavy                                   # the scale tests (cardinality, reduced soak)
    python -m nox -s floors                                  # the lowest versions pyproject.toml allows
    python -m nox -s sdk_suite                               # the SDK's own offline suite, bare, instrumented, retry
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import urllib.request

import nox
import tomllib

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
# Every test session starts dozens of Python processes (xdist workers, the CLI, the applications the tests run) and
# each imports anthropic (~1,000 modules). uv installs no bytecode, and where PYTHONDONTWRITEBYTECODE is set (this
# machine kind sets it) none is written either: every process compiled the SDK from source again (6.1 s against
# 3.3 s for `import anthropic, bedrock_otel, boto3`) and pytest rewrote the test modules again. With it unset, the
# first process to import a module writes its bytecode and every later one reads it: a 2.16.0 session 180 s ->
# 132 s. Compiling the whole venv at install instead (UV_COMPILE_BYTECODE) cost ~10 s a session for the many
# modules no test imports; the first import pays ~4 s.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

SUPPORT = runpy.run_path("src/bedrock_otel/support.py")
PYTHON = SUPPORT["DEFAULT_PYTHON"]
SDK_VERSIONS = list(SUPPORT["TESTED_ANTHROPIC"])
NEWEST = SUPPORT["NEWEST_TESTED_ANTHROPIC"]
OTHER_PYTHONS = [(python, sdk) for python, sdks in SUPPORT["TESTED_PYTHONS"].items() for sdk in sdks]
# The suites run in parallel processes: most tests wait on loopback I/O, timers and subprocesses, not the CPU
PARALLEL = ["-n", "3"]
# What a session runs: the SDK-behaviour suites on every SDK version; the sdk_ends tests (whole programs in
# subprocesses: the CLI, the auto-instrumentation entry points) at the two ends of the SDK range and on every
# Python; the sdk_independent ones at the ends of the Python range and at the floors; the boto3 suite (which no
# anthropic version changes) with the newest SDK only, and in the botocore sessions
MIDDLE = "not heavy and not sdk_independent and not boto3 and not sdk_ends"
SDK_ONLY = "not heavy and not sdk_independent and not boto3"
NEWEST_SDK = "not heavy and not sdk_independent"
EVERYTHING = "not heavy"
# The later platform clients (Mantle, AWS, Foundry, Google Cloud) speak first-party SSE through the stream classes
# every other session tests: their matrices run with the newest SDK and with the last before httpx2
PLATFORM_SDKS = (NEWEST, max((v for v in SDK_VERSIONS if SUPPORT["version_tuple"](v) < (1,)),
                             key=SUPPORT["version_tuple"]))


def _pyenv_pythons() -> None:
    """With pyenv (this machine kind), make every installed Python 3 findable as pythonX.Y, as nox needs; the
    current one stays first, so `python` and `python3` still mean what they meant."""
    if shutil.which("pyenv"):  # pyenv's shim has set PYENV_VERSION to the one version nox runs on
        current = [v for v in os.environ.get("PYENV_VERSION", "").split(":") if v]
        if not current:
            current = subprocess.run(["pyenv", "version-name"], capture_output=True, text=True).stdout.split()
        installed = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        others = [v for v in installed if v.startswith("3.") and v not in current]
        if current and others:
            os.environ["PYENV_VERSION"] = ":".join([*current, *others])


_pyenv_pythons()


def _install(session: nox.Session, anthropic: str, *extra: str) -> None:
    old_httpx = ["httpx<0.28"] if anthropic.startswith(("0.2", "0.3")) else []  # these SDKs pass httpx `proxies=`
    session.install("-e", ".[test]", f"anthropic[bedrock]=={anthropic}", *old_httpx, *extra)


def _suite(session: nox.Session, anthropic: str, marks: str, platforms: bool = False) -> None:
    marks = marks if platforms and anthropic in PLATFORM_SDKS else f"{marks} and not platform_clients"
    session.run("python", "-m", "pytest", "-q", "-p", "no:randomly", *PARALLEL, "-m", marks, *session.posargs,
                env={"BEDROCK_OTEL_EXPECT_ANTHROPIC": anthropic, "BEDROCK_OTEL_EXPECT_PYTHON": session.python or ""})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "examples", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
@nox.parametrize("anthropic", SDK_VERSIONS)
def tests(session: nox.Session, anthropic: str) -> None:
    """The suite on one SDK version. The SDK-behaviour suites run on every version (the platform clients' with
    the versions of PLATFORM_SDKS); the sdk_ends tests at both ends of the range; the boto3 suite with the newest.
    The modules marked sdk_independent (exporters, endpoint, dashboards, fork handling, the benchmark harness: what
    they test does not change with the SDK) run in the `pythons` sessions at both ends of the Python range (the
    oldest SDK with the oldest dependencies 3.9 resolves, the newest SDK with the newest) and at the floors."""
    _install(session, anthropic)
    marks = NEWEST_SDK if anthropic == NEWEST else SDK_ONLY if anthropic == SDK_VERSIONS[0] else MIDDLE
    _suite(session, anthropic, marks, platforms=True)


@nox.session
@nox.parametrize(("python", "anthropic"), OTHER_PYTHONS)
def pythons(session: nox.Session, anthropic: str) -> None:
    """The SDK-behaviour suites on the other supported Pythons, with the oldest and newest SDK each can install
    (what differs between Pythons is the SDK's and httpx's code underneath, and ours: asyncio, typing, gc); the
    whole suite at the two ends: the oldest Python with the oldest SDK, the newest Python with the newest."""
    _install(session, anthropic)
    pythons = sorted(SUPPORT["TESTED_PYTHONS"], key=SUPPORT["version_tuple"])
    # exit, threads and logging change between Pythons (3.12 refuses new threads at exit), and the oldest one
    # resolves older exporters (3.9: grpcio 1.80, opentelemetry-sdk 1.41): the exporters' tests are where it shows
    full = (session.python, anthropic) in ((pythons[0], SDK_VERSIONS[0]), (pythons[-1], NEWEST))
    _suite(session, anthropic, EVERYTHING if full else SDK_ONLY)


@nox.session(python=PYTHON)
@nox.parametrize("botocore", SUPPORT["TESTED_BOTOCORE"])
def botocore(session: nox.Session, botocore: str) -> None:
    """The boto3 suite (bedrock-runtime streams) on an older botocore landmark; every other session installs the
    newest botocore, so the newest is covered everywhere."""
    _install(session, NEWEST, f"botocore=={botocore}")
    session.run("python", "-m", "pytest", "-q", "-p", "no:randomly", *PARALLEL, "-m", "boto3 and not heavy",
                *session.posargs)


def _newest_release() -> str:
    with urllib.request.urlopen("https://pypi.org/pypi/anthropic/json", timeout=30) as response:
        return json.load(response)["info"]["version"]


@nox.session(python=PYTHON)
def newest(session: nox.Session) -> None:
    """Whatever anthropic release is newest on PyPI today, so a new SDK that breaks bedrock_otel shows up on the
    next run rather than at a user's. A release newer than the matrix's newest that passes is announced, not
    failed: add it to TESTED_ANTHROPIC in src/bedrock_otel/support.py (after reading what changed)."""
    release = _newest_release()
    session.log(f"newest anthropic release: {release}; newest in the matrix: {NEWEST}")
    if release in SDK_VERSIONS:  # the same suite on the same version already runs in this nox run
        session.skip(f"anthropic {release} is in the matrix: tests(anthropic='{release}') covers it")
    _install(session, release)
    _suite(session, release, SDK_ONLY)
    if release != NEWEST:
        session.warn(f"anthropic {release} passes but is not in the matrix yet: add it to TESTED_ANTHROPIC in "
                     "src/bedrock_otel/support.py")


@nox.session(python=PYTHON)
def heavy(session: nox.Session) -> None:
    """Scale tests (10,000-model cardinality, the soak in a reduced size) and the benchmarks' smoke tests once, on
    the newest SDK: two at a time (each is one busy process, and what they assert is counted, not timed), with
    their durations printed. `python -m nox -s heavy -- -n 0` runs them one by one and shows the figures they
    print."""
    _install(session, NEWEST)
    session.run("python", "-m", "pytest", "-q", "-s", "-p", "no:randomly", "-n", "2", "--durations", "10", "-m",
                "heavy", *session.posargs)


@nox.session(python=PYTHON)
@nox.parametrize("anthropic", SDK_VERSIONS[1:])  # 0.25.9's sdist ships no tests
def sdk_suite(session: nox.Session, anthropic: str) -> None:
    """The SDK's own offline suite, bare, instrumented and in retry mode: each test file on the oldest and the newest
    SDK of the matrix that ship it (tests/sdk_suite.py)."""
    _install(session, anthropic, f"anthropic[vertex,aiohttp]=={anthropic}", "pip")
    workdir = session.create_tmp()
    session.run("python", "tests/sdk_suite.py", "requirements", workdir)
    session.install("-r", f"{workdir}/requirements.txt")
    session.run("python", "tests/sdk_suite.py", "run", workdir)


def _floors() -> list[str]:
    """pyproject.toml's runtime dependencies pinned to the lowest version each allows (`>=X` becomes `==X`)."""
    with open("pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    return [re.sub(r">=\s*", "==", dependency) for dependency in dependencies]


@nox.session(python=PYTHON)
def floors(session: nox.Session) -> None:
    """The suite with every runtime dependency at its declared minimum, so the floors are true (newest SDK)."""
    _install(session, NEWEST, *_floors())
    _suite(session, NEWEST, EVERYTHING)
