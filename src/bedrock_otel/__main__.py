"""`python -m bedrock_otel ...` is the `bedrock-otel` command."""

from .cli import main

raise SystemExit(main())
