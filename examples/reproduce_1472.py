"""Reproduce anthropics/anthropic-sdk-python#1472 on loopback and show what bedrock_otel records.

    python examples/reproduce_1472.py            # observe mode: the application sees what the SDK gives it
    BEDROCK_OTEL_REPAIR=1 python examples/reproduce_1472.py   # repair mode: RateLimitError on every SDK
"""

from __future__ import annotations

import gc
import logging

import anthropic
from prometheus_client import REGISTRY, generate_latest

import bedrock_otel
from bedrock_otel.testing import LoopbackServer, scenarios

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
bedrock_otel.instrument()

with LoopbackServer(scenario=scenarios.ERROR_FIRST) as server:  # a rate_limit_error inside an HTTP 200 stream
    client = anthropic.AnthropicBedrock(**server.bedrock_client_kwargs())
    print(f"anthropic {anthropic.__version__}: streaming from {scenarios.BEDROCK_MODEL} ...")
    try:
        for event in client.messages.create(model=scenarios.BEDROCK_MODEL, max_tokens=64, stream=True,
                                            messages=[{"role": "user", "content": "Hello"}]):
            print("  the application got", type(event).__name__, "type =", event.type)
            print("  event.message.model ->", event.message.model)
    except Exception as exc:  # AttributeError on SDKs < 0.110, APIStatusError(200) after, RateLimitError repaired
        print(f"  the application raised {type(exc).__name__}: {exc}")

gc.collect()  # SDKs <= 1.13 keep a crashed stream in a reference cycle: it ends when collected
print("\nWhat bedrock_otel recorded (Prometheus text):")
for line in generate_latest(REGISTRY).decode().splitlines():
    if line.startswith(("anthropic_", "gen_ai_")) and not line.startswith(("#",)) and "_created" not in line \
            and "_bucket" not in line:
        print(" ", line)
