"""Write the Grafana dashboards, the Prometheus and Grafana alert rules and the Grafana provisioning files into a
folder, generated from this installation's telemetry catalogue (no repository checkout needed). Files of the same
name are overwritten; nothing else in the folder is touched. See dashboards/README.md for where each file goes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlsplit

from ..config import ConfigError
from ..monitoring import alerts, files

NAME = "dashboards"
HELP = "write the Grafana dashboards, alert rules and provisioning files into a folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", nargs="?", default="dashboards", type=Path,
                        help="the folder to write into, created if missing (default: ./dashboards)")
    parser.add_argument("--runbook-url", default=alerts.RUNBOOK_URL, metavar="URL",
                        help="where the alerts' runbooks are (docs/alerts.md, or your copy of it); each rule's "
                             f"runbook_url is URL#alertname (default: {alerts.RUNBOOK_URL})")


def runbook_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise ConfigError(f"--runbook-url must be an absolute http(s) URL without a #fragment, got {value!r}")
    return value


def main(args: argparse.Namespace) -> int:
    generated = files.generated(runbook_url(args.runbook_url))
    out: Path = args.directory
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is not a directory")
    try:
        for relative, text in generated.items():
            path = out / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path)
    except OSError as error:
        raise ConfigError(f"cannot write into {out}: {error.strerror or error}") from None
    return 0
