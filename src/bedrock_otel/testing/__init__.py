"""A testing toolkit for your own code: Bedrock's binary event stream and the first-party SSE API on loopback.

    from bedrock_otel.testing import LoopbackServer, scenarios

    with LoopbackServer() as server:
        client = anthropic.AnthropicBedrock(**server.bedrock_client_kwargs())
        server.play(scenarios.ERROR_FIRST)       # the #1472 frame: rate_limit_error inside HTTP 200
        for event in client.messages.create(model="global.anthropic.claude-opus-4-7", max_tokens=10,
                                            messages=[{"role": "user", "content": "hi"}], stream=True):
            event.message.model                  # AttributeError on anthropic < 0.110
"""

from . import scenarios
from .eventstream import chunk_frame, encode_frame, exception_frame
from .server import LoopbackServer

__all__ = ["LoopbackServer", "chunk_frame", "encode_frame", "exception_frame", "scenarios"]
