"""Run the real Alertmanager (Debian's `prometheus-alertmanager` package) on loopback, routing every alert to a
webhook receiver in this process: what an on-call engineer would be sent, for end-to-end tests of the alert rules
(`PrometheusServer(..., alertmanagers=[am.host_port])`).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .prometheus import LoopbackDaemon


class AlertmanagerNotInstalled(RuntimeError):
    """Neither `prometheus-alertmanager` (Debian) nor `alertmanager` is on PATH."""


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that keeps every alert Alertmanager posts (its webhook payload's `alerts`, each
    with `status`, `labels` and `annotations`), in arrival order. A context manager."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with receiver._changed:
                    receiver.alerts.extend(payload.get("alerts", []))
                    receiver._changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, alertname: str, status: str = "firing", timeout: float = 60, **labels: str) -> dict[str, Any]:
        """The first alert received named `alertname` in `status` whose labels include `labels`."""
        def match() -> dict[str, Any] | None:
            return next((a for a in self.alerts if a["labels"].get("alertname") == alertname and a["status"] == status
                         and all(a["labels"].get(k) == v for k, v in labels.items())), None)

        deadline = time.monotonic() + timeout
        with self._changed:
            while (found := match()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {status} {alertname} {labels} in {timeout} s; received: "
                                         f"{[(a['labels'].get('alertname'), a['status']) for a in self.alerts]}")
                self._changed.wait(left)
        return found


class AlertmanagerServer(LoopbackDaemon):
    """`alertmanager` on 127.0.0.1 (clustering off) sending each alert, as its own group and at once, to
    `webhook_url`, resolved ones included. A context manager."""

    name = "alertmanager"

    def __init__(self, webhook_url: str, binary: str | None = None) -> None:
        binary = binary or shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise AlertmanagerNotInstalled("alertmanager is not installed (Debian/Ubuntu: apt-get install "
                                           "prometheus-alertmanager)")
        super().__init__(binary)
        self.webhook_url = webhook_url

    def config(self) -> str:
        return json.dumps({  # JSON is YAML
            "route": {"receiver": "webhook", "group_by": ["..."], "group_wait": "0s", "group_interval": "1s",
                      "repeat_interval": "1h"},
            "receivers": [{"name": "webhook", "webhook_configs": [{"url": self.webhook_url, "send_resolved": True}]}],
        })

    def arguments(self, config: Path, data: Path) -> list[str]:
        return [f"--config.file={config}", f"--storage.path={data}", f"--web.listen-address={self.host_port}",
                "--cluster.listen-address=", "--log.level=warn"]
