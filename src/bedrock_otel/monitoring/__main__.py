"""`python -m bedrock_otel.monitoring [DIR] [--runbook-url URL]`: the same as `bedrock-otel dashboards`."""

from __future__ import annotations

import sys

from ..cli import main

sys.exit(main(["dashboards", *sys.argv[1:]]))
