"""Run the real Prometheus server (Debian's `prometheus` package) on loopback, scraping given targets.

For the demo's `--prometheus` and for end-to-end tests of dashboards and alert rules. Prometheus' discovery
updates targets every 5 s, so use `wait_for_scrapes()` rather than sleeping.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar


class PrometheusNotInstalled(RuntimeError):
    """The `prometheus` binary is not on PATH."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def host_port(url: str) -> str:
    """`host:port` of a /metrics URL, as a static_configs target."""
    return urllib.parse.urlsplit(url).netloc


_Daemon = TypeVar("_Daemon", bound="LoopbackDaemon")


class LoopbackDaemon:
    """A server of the Prometheus project (prometheus, alertmanager) run from its binary on 127.0.0.1 with its
    config file in a temporary directory; ready when `/-/ready` answers. A context manager."""

    name = "daemon"

    def __init__(self, binary: str, port: int = 0) -> None:
        self.binary, self.port = binary, port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix=f"bedrock-otel-{self.name}-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    def config(self) -> str:
        raise NotImplementedError

    def arguments(self, config: Path, data: Path) -> list[str]:
        """The command line after the binary."""
        raise NotImplementedError

    def start(self, timeout: float = 30) -> LoopbackDaemon:
        config = self._dir / f"{self.name}.yml"
        config.write_text(self.config())
        log = (self._dir / f"{self.name}.log").open("wb")
        self._process = subprocess.Popen([self.binary, *self.arguments(config, self._dir / "data")], stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self._process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.name} not ready after {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self: _Daemon) -> _Daemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        path = self._dir / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class PrometheusServer(LoopbackDaemon):
    """`prometheus` scraping `targets` (host:port of /metrics endpoints) every `scrape_interval`, with
    `rule_files` loaded and alerts sent to `alertmanagers` (host:port), on 127.0.0.1 and a temporary data
    directory, with `features` on (`--enable-feature`: `exemplar-storage`, ...). A context manager."""

    name = "prometheus"

    def __init__(self, targets: Sequence[str], rule_files: Sequence[Path] = (), scrape_interval: str = "1s",
                 job: str = "bedrock_otel", port: int = 0, binary: str | None = None,
                 alertmanagers: Sequence[str] = (), features: Sequence[str] = ()) -> None:
        binary = binary or shutil.which("prometheus")
        if binary is None:
            raise PrometheusNotInstalled("prometheus is not installed (Debian/Ubuntu: apt-get install prometheus)")
        super().__init__(binary, port)
        self.targets, self.rule_files, self.job = list(targets), [Path(r).resolve() for r in rule_files], job
        self.scrape_interval, self.alertmanagers, self.features = scrape_interval, list(alertmanagers), list(features)

    def config(self) -> str:
        rules = "".join(f"\n  - {json.dumps(str(r))}" for r in self.rule_files)
        managers = f"[{{static_configs: [{{targets: {json.dumps(self.alertmanagers)}}}]}}]"
        alerting = f"alerting:\n  alertmanagers: {managers}\n" if self.alertmanagers else ""
        return (f"global: {{scrape_interval: {self.scrape_interval}, evaluation_interval: {self.scrape_interval}}}\n"
                f"rule_files:{rules or ' []'}\n{alerting}"
                f"scrape_configs:\n  - job_name: {self.job}\n"
                f"    static_configs: [{{targets: {json.dumps(self.targets)}}}]\n")

    def arguments(self, config: Path, data: Path) -> list[str]:
        # alerts go out again every evaluation rather than every minute (the default): tests wait seconds
        resend = ["--rules.alert.resend-delay=1s"] if self.alertmanagers else []
        return [f"--config.file={config}", f"--storage.tsdb.path={data}", f"--web.listen-address={self.host_port}",
                "--storage.tsdb.retention.time=1h", "--log.level=warn", *resend,
                *(f"--enable-feature={feature}" for feature in self.features)]

    # -- HTTP API ----------------------------------------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (each item has `metric` and `value`)."""
        return list(self.api("query", query=expr)["result"])

    def wait_for_scrapes(self, scrapes: int = 2, timeout: float = 30) -> None:
        """Wait until every target is up and has been scraped `scrapes` times *after this call* (`up` has that
        many samples since), so whatever the caller recorded before is in at least that many samples and a
        rate() over a short window sees it."""
        started = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            targets = self.api("targets")["activeTargets"]
            if targets and all(t["health"] == "up" for t in targets):
                window = f"[{max(1, int((time.time() - started) * 1000))}ms]"
                counts = self.query(f"count_over_time(up{{job={json.dumps(self.job)}}}{window})")
                if len(counts) == len(self.targets) and all(float(c["value"][1]) >= scrapes for c in counts):
                    return
            time.sleep(0.2)
        raise TimeoutError(f"targets not scraped {scrapes} times in {timeout} s: {self.api('targets')}")
