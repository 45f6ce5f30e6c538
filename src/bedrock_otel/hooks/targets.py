"""The patch table: every place bedrock_otel hooks into, as data. Missing targets are skipped, not fatal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import boto, wrappers


@dataclass(frozen=True)
class Target:
    module: str
    qualname: str
    wrapper: Callable[..., Any]
    # "wrapt": a wrapt FunctionWrapper; "plain": `wrapper(original)` returns the replacement function.
    style: str = "wrapt"
    why: str = ""


TARGETS: tuple[Target, ...] = (
    Target("anthropic._base_client", "SyncAPIClient.request", wrappers.request,
           why="one call with its retries: labels, span, duration start"),
    Target("anthropic._base_client", "AsyncAPIClient.request", wrappers.arequest, why="async twin"),
    Target("anthropic._streaming", "Stream.__stream__", wrappers.stream_items,
           why="what the caller gets: masquerades, usage, exceptions, early stop"),
    Target("anthropic._streaming", "AsyncStream.__stream__", wrappers.astream_items, why="async twin"),
    Target("anthropic._streaming", "Stream._iter_events", wrappers.stream_events,
           why="every decoded SSE event, including ping and error"),
    Target("anthropic._streaming", "AsyncStream._iter_events", wrappers.astream_events, why="async twin"),
    Target("anthropic._streaming", "Stream.close", wrappers.close, why="the caller closed the stream"),
    Target("anthropic._streaming", "AsyncStream.close", wrappers.close, why="async twin"),
    Target("anthropic.lib.bedrock._stream_decoder", "AWSEventStreamDecoder._parse_message_from_event",
           wrappers.frame_hook, style="plain", why="Bedrock frames the decoder drops (per frame: no wrapt)"),
    Target("anthropic._base_client", "BaseClient._should_retry", wrappers.should_retry,
           why="pressure mode: the retry budget may refuse a retry the SDK would make"),
    Target("httpx", "Client.send", wrappers.send, why="each HTTP attempt: status, rate-limit headers (SDK < 1.0)"),
    Target("httpx", "AsyncClient.send", wrappers.asend, why="async twin"),
    Target("httpx2", "Client.send", wrappers.send, why="each HTTP attempt (SDK >= 1.0 uses httpx2)"),
    Target("httpx2", "AsyncClient.send", wrappers.asend, why="async twin"),
    # boto3 / botocore: bedrock-runtime InvokeModelWithResponseStream and ConverseStream
    Target("botocore.client", "BaseClient._make_api_call", boto.make_api_call,
           why="one botocore call with its retries: observed streams get labels, span, duration start"),
    Target("botocore.endpoint", "Endpoint._send", boto.send,
           why="each HTTP attempt, botocore's retries included: status, HTTP 429s, retry-after, request id"),
    Target("botocore.endpoint", "Endpoint._needs_retry", boto.needs_retry,
           why="pressure mode: the retry budget may refuse a retry botocore would make"),
    Target("botocore.eventstream", "EventStream.__iter__", boto.events,
           why="every parsed event of an observed stream, and the exception frames it raises"),
    Target("botocore.eventstream", "EventStream.close", boto.close, why="the caller closed the stream"),
)
