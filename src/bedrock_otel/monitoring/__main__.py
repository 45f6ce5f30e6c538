"""`python -m bedrock_otel.monitoring [DIR]`: write the dashboards, alert rules and provisioning files."""

from __future__ import annotations

import sys
from pathlib import Path

from .files import generated

out = Path(sys.argv[1] if len(sys.argv) > 1 else "dashboards")
for relative, text in generated().items():
    path = out / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(path)
