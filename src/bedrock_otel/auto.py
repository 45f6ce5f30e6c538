"""`import bedrock_otel.auto`: instrument at import, with settings from BEDROCK_OTEL_* variables.

Works before or after `import anthropic`: targets are patched when their modules are imported.
"""

from __future__ import annotations

from . import instrument

instrument()
