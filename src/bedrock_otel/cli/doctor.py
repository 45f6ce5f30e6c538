"""Check this installation: the anthropic SDK and whether it mishandles in-band stream errors (#1472, found out
by feeding a synthetic error frame through this SDK's own Bedrock decoder, in-process), which patch targets
apply to it, the settings, and where telemetry goes. Exit status 1 when something is wrong.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import Requirement
from packaging.version import Version

from .. import exporters
from .._version import __version__
from ..config import ConfigError, Settings
from ..exporters import otlp
from ..exporters.prometheus import MULTIPROC_DIR_ENV
from ..families.boto import OPERATIONS
from ..hooks.targets import TARGETS
from ..instrumentation import PATCHER
from ..support import NEWEST_TESTED_ANTHROPIC, SUPPORTED_ANTHROPIC

NAME = "doctor"
HELP = "check the SDK (#1472), patch targets, settings and exporters; exit 1 when something is wrong"
OK, WARN, FAIL = "ok", "warn", "FAIL"
FIXED_IN = "0.110.0"
SUPPORTED = Requirement(SUPPORTED_ANTHROPIC).specifier


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print only warnings and failures")


@dataclass
class Report:
    lines: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def add(self, status: str, text: str, details: list[str] | None = None) -> None:
        self.lines.append((status, text, details or []))

    @property
    def failures(self) -> int:
        return sum(status == FAIL for status, _, _ in self.lines)

    def render(self, quiet: bool = False) -> str:
        out = []
        for status, text, details in self.lines:
            if quiet and status == OK:
                continue
            out.append(f"  {status:<5} {text}")
            out.extend(f"          {d}" for d in details)
        return "\n".join(out)


def sdk_http_library() -> Any:
    """The HTTP library module this SDK version sends with: httpx2 from 1.0, httpx before."""
    base = importlib.import_module("anthropic._base_client")
    return getattr(base, "httpx2", None) or base.httpx


def probe_error_frame() -> tuple[bool, str]:
    """(affected, what happened): a Bedrock stream whose first chunk is an in-band rate_limit_error, through
    the installed SDK's own client and event-stream decoder, over an in-process transport (no socket)."""
    import anthropic

    from ..testing import eventstream, scenarios

    http = sdk_http_library()
    frame = eventstream.chunk_frame(scenarios.error_event("rate_limit_error", "Rate limited").payload)

    def handler(request: Any) -> Any:
        return http.Response(200, headers={"content-type": "application/vnd.amazon.eventstream"}, content=frame)

    client = anthropic.AnthropicBedrock(aws_access_key="doctor", aws_secret_key="doctor", aws_region="us-east-1",
                                        max_retries=0, http_client=http.Client(transport=http.MockTransport(handler)))
    try:
        stream = client.messages.create(model=scenarios.BEDROCK_MODEL, max_tokens=1, stream=True,
                                        messages=[{"role": "user", "content": "doctor"}])
        first = next(iter(stream), None)
    except anthropic.APIStatusError as exc:
        return False, f"raises {type(exc).__name__} (HTTP status {exc.status_code})"
    except Exception as exc:
        return True, f"raises {type(exc).__name__}: {exc}"
    if first is not None and getattr(first, "message", "") is None:
        return True, f"yields a {type(first).__name__} with message=None (event.message.model raises AttributeError)"
    return True, f"yields {type(first).__name__}; the error is not raised"


def check_sdk(report: Report, settings: Settings | None) -> None:
    import bedrock_otel

    if bedrock_otel.is_instrumented():  # e.g. under `bedrock-otel run`: probe the SDK as it is
        bedrock_otel.uninstrument()
    try:
        import anthropic
    except ImportError:
        report.add(FAIL, "anthropic is not installed: nothing to instrument (pip install 'anthropic[bedrock]')")
        return
    version = anthropic.__version__
    supported = SUPPORTED.contains(version, prereleases=True)
    http = sdk_http_library().__name__
    report.add(OK if supported else FAIL, f"anthropic {version} (supported: {SUPPORTED_ANTHROPIC}; tested up to "
                                          f"{NEWEST_TESTED_ANTHROPIC}); HTTP library: {http}")
    if supported and Version(version) > Version(NEWEST_TESTED_ANTHROPIC):
        report.add(WARN, f"anthropic {version} is newer than {NEWEST_TESTED_ANTHROPIC}, the newest version "
                         f"bedrock_otel {__version__} was tested with: the checks below probe it as installed, but "
                         "a change in how it streams may not be handled yet",
                   ["upgrade bedrock_otel, or pin anthropic<=" + NEWEST_TESTED_ANTHROPIC + " until it supports it"])
    try:
        affected, detail = probe_error_frame()
    except ImportError as exc:
        report.add(WARN, f"#1472 check skipped: Bedrock support is not installed ({exc}); "
                         "pip install 'anthropic[bedrock]' to use AnthropicBedrock")
    else:
        if not affected:
            report.add(OK, f"#1472: not affected: an in-band rate_limit_error frame {detail}",
                       ["(never RateLimitError: repair mode, BEDROCK_OTEL_REPAIR=1, raises the matching class)"])
        elif settings is not None and settings.repair:
            report.add(WARN, f"#1472: AFFECTED, repair mode is on: an in-band rate_limit_error frame {detail} "
                             "without it", [f"upgrade to anthropic >= {FIXED_IN} when you can"])
        else:
            report.add(FAIL, f"#1472: AFFECTED: an in-band rate_limit_error frame {detail}",
                       [f"fix: upgrade to anthropic >= {FIXED_IN}, or turn on repair mode (BEDROCK_OTEL_REPAIR=1)"])
    check_targets(report, http)


def check_targets(report: Report, http: str) -> None:
    wanted = {t.module for t in TARGETS if t.module.startswith("anthropic")} | {http}
    if importlib.util.find_spec("botocore") is not None:  # boto3's bedrock-runtime streams
        wanted |= {t.module for t in TARGETS if t.module.startswith("botocore.")}
    import_errors = {}
    for module in sorted(wanted):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            import_errors[module] = str(exc)
    PATCHER.apply()  # patching only: with nothing instrumented the wrappers pass everything through
    details, missing, bedrock_missing = [], 0, False
    try:
        for target in TARGETS:
            name = f"{target.module}:{target.qualname}"
            if target in PATCHER.applied:
                details.append(f"applied  {name}")
            elif target.module not in wanted:
                details.append(f"unused   {name} (this SDK sends with {http})")
            elif target.module in import_errors:
                bedrock_missing = bedrock_missing or "bedrock" in target.module
                details.append(f"missing  {name}: cannot import ({import_errors[target.module]})")
                missing += "bedrock" not in target.module
            else:
                details.append(f"missing  {name}: {PATCHER.skipped.get(target, 'not patched')}")
                missing += 1
    finally:
        PATCHER.restore()
    applied = sum(d.startswith("applied") for d in details)
    status = FAIL if missing else WARN if bedrock_missing else OK
    report.add(status, f"patch targets: {applied} applied, {missing} missing", details)


def check_boto3(report: Report) -> None:
    """Which of boto3's bedrock-runtime stream calls the installed botocore has, and so are observed."""
    try:
        import botocore
        import botocore.session
    except ImportError:
        report.add(OK, "boto3 (botocore) is not installed: no boto3 streams to observe")
        return
    try:
        model = botocore.session.get_session().get_service_model("bedrock-runtime")
        operations = set(model.operation_names)
    except Exception:
        operations = set()
    observed = [name for name in OPERATIONS if name in operations]
    report.add(OK if observed else WARN, f"botocore {botocore.__version__}: boto3 bedrock-runtime streams observed: "
               + (", ".join(observed) or "none (this botocore has no bedrock-runtime streams: upgrade to >= 1.31.57)"))


def check_exporters(report: Report, settings: Settings) -> None:
    port = exporters.prometheus_port(settings)
    try:
        exporters.check(settings)
    except ConfigError as exc:
        report.add(FAIL, str(exc))
    if port is None:
        report.add(OK, "/metrics endpoint: off (set BEDROCK_OTEL_PROMETHEUS_PORT, or use `bedrock-otel run`)")
    else:
        where = f"{settings.prometheus_addr}:{port}"
        if port and not _can_bind(settings.prometheus_addr, port):
            report.add(WARN, f"/metrics endpoint: {where}, but that port is in use now")
        elif settings.prometheus_addr not in ("127.0.0.1", "::1", "localhost"):
            report.add(WARN, f"/metrics endpoint: {where}: reachable from other hosts (you chose this address)")
        else:
            report.add(OK, f"/metrics endpoint: http://{where}/metrics")
    multiproc = os.environ.get(MULTIPROC_DIR_ENV)
    if multiproc:
        usable = os.path.isdir(multiproc) and os.access(multiproc, os.W_OK)
        report.add(OK if usable else FAIL, f"prometheus_client multiprocess mode: {MULTIPROC_DIR_ENV}={multiproc}"
                                           + ("" if usable else " is not a writable directory"))
    for signal, where in otlp.describe(settings).items():
        report.add(OK, f"{signal}: {where}")
        if "otlp" in otlp.exporters_for(signal, settings) and not otlp.global_is_set(signal):
            url, answered, seconds, reason = otlp.probe(signal, settings)
            if answered:
                report.add(OK, f"{signal}: the OTLP endpoint {url} answers an empty export in {seconds * 1000:.0f} ms")
            else:
                report.add(WARN, f"{signal}: the OTLP endpoint {url} does not answer ({reason}; after {seconds:.1f} s)",
                           ["while it is down, telemetry is dropped and counted "
                            "(bedrock_otel_telemetry_dropped_total{bedrock_otel_dropped_reason=\"export_failed\"}) "
                            "and the application's exit waits at most BEDROCK_OTEL_EXPORT_EXIT_TIMEOUT="
                            f"{settings.export_exit_timeout:g} s for it"])
    report.add(OK, f"recorders: {', '.join(settings.metrics) or 'none'}; spans: {'on' if settings.traces else 'off'}")


def _can_bind(addr: str, port: int) -> bool:
    try:
        family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((addr, port))
        return True
    except OSError:
        return False


def main(args: argparse.Namespace) -> int:
    report = Report()
    report.add(OK, f"bedrock_otel {__version__} on Python {platform.python_version()} ({sys.executable})")
    settings: Settings | None
    try:
        settings = Settings.load({})
        report.add(OK, "settings: valid (BEDROCK_OTEL_* and OTEL_* variables)")
    except ConfigError as exc:
        settings = None
        report.add(FAIL, f"settings: {exc}")
    check_sdk(report, settings)
    check_boto3(report)
    if settings is not None:
        check_exporters(report, settings)
    print("bedrock-otel doctor")
    print(report.render(args.quiet))
    failures = report.failures
    print(f"\n{failures} problem{'s' * (failures != 1)} found." if failures else "\nno problems found.")
    return 1 if failures else 0
