"""A loopback HTTP server that speaks Bedrock's invoke-with-response-stream and converse-stream (as the Anthropic
SDK's Bedrock clients and boto3's `bedrock-runtime` client call them, SigV4-signed requests accepted), Vertex's
`:streamRawPredict` and the first-party Messages API.

Which scenario a request gets: the `x-bedrock-otel-scenario` request header (pass it with the SDK's
`extra_headers=`; for boto3, `workload.boto3_scenario`), else the one set with `play()`. The attempt number (for
scripted retries) comes from the SDK's `x-stainless-retry-count` header or botocore's `amz-sdk-request:
attempt=N`, or on clients that send neither from a counter per scenario and `x-bedrock-otel-stream` header (a
per-stream id, so concurrent streams do not share a count).

A scenario is written in Anthropic events; on converse-stream they are sent as Converse events (`ConverseEncoder`).
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import eventstream
from .quota import Quota, who_is
from .scenarios import (
    ALL,
    NORMAL,
    RATE_LIMIT_HEADERS,
    SESSION_EVENTS,
    Corrupt,
    Cut,
    Event,
    ExceptionFrame,
    Garbage,
    Raw,
    Reply,
    Reset,
    Scenario,
    Stall,
    TypelessChunk,
)

SCENARIO_HEADER = "x-bedrock-otel-scenario"
STREAM_HEADER = "x-bedrock-otel-stream"


def encode_sse(part: Any) -> bytes:
    if isinstance(part, Event):
        name = part.payload.get("type", "message")
        return f"event: {name}\ndata: {json.dumps(part.payload)}\n\n".encode()
    if isinstance(part, ExceptionFrame):  # no exception frames first-party: the same error as an SSE error
        payload = {"type": "error", "error": {"type": part.exception_type, "message": part.message}}
        return f"event: error\ndata: {json.dumps(payload)}\n\n".encode()
    if isinstance(part, TypelessChunk):
        return f"data: {json.dumps(part.payload)}\n\n".encode()
    if isinstance(part, Raw):
        return b"event: content_block_delta\ndata: " + part.data + b"\n\n"
    if isinstance(part, Corrupt):  # no checksum to break: break the JSON instead
        return encode_sse(Raw(json.dumps(part.part.payload).encode()[:-1]))
    return _encode_either(part, encode_sse)


def encode_bedrock(part: Any) -> bytes:
    if isinstance(part, (Event, TypelessChunk)):
        return eventstream.chunk_frame(part.payload)
    if isinstance(part, ExceptionFrame):
        return eventstream.exception_frame(part.exception_type, part.message)
    if isinstance(part, Raw):
        return eventstream.chunk_frame(part.data)
    if isinstance(part, Corrupt):  # one payload byte changed: the message CRC no longer matches
        frame = bytearray(eventstream.chunk_frame(part.part.payload))
        frame[len(frame) // 2] ^= 0x01
        return bytes(frame)
    return _encode_either(part, encode_bedrock)


# what Bedrock names an Anthropic error type, as the `x-amzn-ErrorType` of an HTTP error and as an exception frame
# on converse-stream (which has no in-band error events)
AWS_ERRORS = {"rate_limit_error": "ThrottlingException", "overloaded_error": "ServiceUnavailableException",
              "api_error": "InternalServerException", "invalid_request_error": "ValidationException"}


def frame_name(aws_error: str) -> str:
    return aws_error[0].lower() + aws_error[1:]  # ThrottlingException -> throttlingException


class ConverseEncoder:
    """Anthropic events as ConverseStream sends them: messageStart, contentBlockStart (not for text blocks),
    contentBlockDelta, contentBlockStop, messageStop (from message_delta) and metadata with the usage (from
    message_stop). `ping` and chunks without a type have no Converse form and send nothing; an in-band error
    becomes the exception frame Bedrock sends for it. One encoder per reply: it carries the usage along."""

    def __init__(self) -> None:
        self.usage: dict[str, int] = {}

    def __call__(self, part: Any) -> bytes:
        if isinstance(part, Event):
            return self._event(part.payload)
        if isinstance(part, ExceptionFrame):
            return eventstream.exception_frame(part.exception_type, part.message)
        if isinstance(part, TypelessChunk):
            return b""
        if isinstance(part, Raw):
            return eventstream.event_frame("contentBlockDelta", part.data)
        if isinstance(part, Corrupt):
            frame = bytearray(self(part.part))
            frame[len(frame) // 2] ^= 0x01
            return bytes(frame)
        return _encode_either(part, self)

    def _event(self, event: dict[str, Any]) -> bytes:
        kind, index = event.get("type"), event.get("index", 0)
        if kind == "message_start":
            usage = event.get("message", {}).get("usage", {})
            self.usage = {"inputTokens": usage.get("input_tokens", 0),
                          "cacheReadInputTokens": usage.get("cache_read_input_tokens", 0),
                          "cacheWriteInputTokens": usage.get("cache_creation_input_tokens", 0)}
            return eventstream.event_frame("messageStart", {"role": "assistant"})
        if kind == "content_block_start":
            block = event.get("content_block", {})
            if block.get("type") == "text":
                return b""
            start = {"toolUse": {"toolUseId": block.get("id", ""), "name": block.get("name", "")}}
            return eventstream.event_frame("contentBlockStart", {"start": start, "contentBlockIndex": index})
        if kind == "content_block_delta":
            delta = event.get("delta", {})
            body = {"text": delta["text"]} if "text" in delta else {"toolUse": {"input": delta.get("partial_json", "")}}
            return eventstream.event_frame("contentBlockDelta", {"delta": body, "contentBlockIndex": index})
        if kind == "content_block_stop":
            return eventstream.event_frame("contentBlockStop", {"contentBlockIndex": index})
        if kind == "message_delta":
            self.usage["outputTokens"] = event.get("usage", {}).get("output_tokens", 0)
            return eventstream.event_frame("messageStop", {"stopReason": event.get("delta", {}).get("stop_reason")})
        if kind == "message_stop":
            usage = {**self.usage, "totalTokens": sum(self.usage.values())}
            return eventstream.event_frame("metadata", {"usage": usage, "metrics": {"latencyMs": 1}})
        if kind == "ping":
            return b""
        if kind == "error":
            error = event.get("error", {})
            name = frame_name(AWS_ERRORS.get(error.get("type"), "ModelStreamErrorException"))
            return eventstream.exception_frame(name, error.get("message", ""))
        return eventstream.event_frame(str(kind), event)  # a type Converse does not have


def _encode_either(part: Any, encode: Any) -> bytes:
    """Parts that mean the same bytes on both protocols."""
    if isinstance(part, Garbage):
        return part.data
    if isinstance(part, Cut):
        whole = encode(part.part)
        return whole[: len(whole) // 2]
    raise TypeError(part)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        bedrock = self.path.startswith("/model/")
        streaming = self.path.endswith(("invoke-with-response-stream", "converse-stream")) or (
            not bedrock and body.get("stream"))
        scenario = self.server.owner.scenario_for(self.headers.get(SCENARIO_HEADER))
        retry_count = self.headers.get("x-stainless-retry-count")
        aws_attempt = self.headers.get("amz-sdk-request", "").partition("attempt=")[2].partition(";")[0]
        if retry_count is None and aws_attempt.isdigit():  # botocore numbers attempts from 1
            retry_count = str(int(aws_attempt) - 1)
        attempt = self.server.owner.attempt_for(scenario, retry_count, self.headers.get(STREAM_HEADER, ""))
        self.server.owner.record(self.path, dict(self.headers), scenario.name, attempt)
        reply = scenario.reply_for(attempt)
        quota = self.server.owner.quota
        user_agent = self.headers.get("user-agent", "")
        wait = quota.admit(body, bedrock, who_is(user_agent)) if quota is not None and streaming else None
        if wait is not None:
            reply = quota.throttle(self.path, bedrock, user_agent, wait)
        if reply.json_body is not None or not streaming:
            self._send_json(reply, bedrock)
        else:
            self._send_stream(reply, bedrock)

    def do_GET(self) -> None:
        """A Managed Agents session's event stream, on first-party and Bedrock's control-plane paths alike."""
        path = self.path.partition("?")[0]
        self.server.owner.record(self.path, dict(self.headers), "session_events", 0)
        if not (path.startswith(("/v1/sessions/", "/anthropic/v1/sessions/")) and path.endswith("/stream")):
            self._send_json(Reply(status=404, json_body={"type": "error", "error": {
                "type": "not_found_error", "message": f"no such path: {path}"}}), bedrock=False)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self._common_headers(Reply(), bedrock=False)
        self.end_headers()
        for event in SESSION_EVENTS:
            data = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")

    def _common_headers(self, reply: Reply, bedrock: bool) -> None:
        if bedrock:
            self.send_header("x-amzn-requestid", "aws-req-bedrock-otel-1")
        else:
            self.send_header("request-id", "req_bedrock_otel_1")
            for name, value in RATE_LIMIT_HEADERS.items():
                self.send_header(name, value)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("connection", "close")
        self.close_connection = True

    def _send_json(self, reply: Reply, bedrock: bool) -> None:
        payload = reply.json_body
        if payload is None:
            payload = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
                       "stop_sequence": None, "content": [{"type": "text", "text": "Hello"}],
                       "usage": {"input_tokens": 1, "output_tokens": 1}}
        aws_error = None
        if bedrock and reply.status >= 400:
            error = payload.get("error", {})
            aws_error = AWS_ERRORS.get(error.get("type"), "InternalServerException")
            payload = {"message": error.get("message", "error")}
        data = json.dumps(payload).encode()
        self.send_response(reply.status)
        self.send_header("content-type", "application/json")
        if aws_error is not None:  # as Bedrock names its errors (botocore reads the code here)
            self.send_header("x-amzn-ErrorType", f"{aws_error}:http://internal.amazon.com/coral/com.amazon.bedrock/")
        self.send_header("content-length", str(len(data)))
        self._common_headers(reply, bedrock)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, reply: Reply, bedrock: bool) -> None:
        self.send_response(reply.status)
        self.send_header("content-type", "application/vnd.amazon.eventstream" if bedrock else "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self._common_headers(reply, bedrock)
        self.end_headers()
        encode: Any = encode_bedrock if bedrock else encode_sse
        if self.path.endswith("converse-stream"):
            encode = ConverseEncoder()
        pace = self.server.owner.pace
        for i, part in enumerate(reply.parts):
            if pace:
                time.sleep(pace[i > 0] * random.uniform(0.5, 1.5))
            if isinstance(part, Reset):
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if isinstance(part, Stall):
                self.wfile.flush()
                time.sleep(part.seconds)
                continue
            data = encode(part)
            if data:  # an empty chunk would end the body
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # hundreds of concurrent streams connect at once in soak runs
    owner: LoopbackServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up early (abandoned streams, resets) are part of the scenarios, not errors."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


class ClientArguments:
    """What the workload needs of a server: client arguments pointing at `self.url`."""

    url: str

    def anthropic_client_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Arguments for `anthropic.Anthropic(...)` / `AsyncAnthropic(...)` pointed at this server."""
        return {"api_key": "sk-ant-test", "base_url": self.url, **overrides}

    def bedrock_client_kwargs(self, region: str = "us-east-1", **overrides: Any) -> dict[str, Any]:
        """Arguments for `anthropic.AnthropicBedrock(...)` / `AsyncAnthropicBedrock(...)` (SigV4 with fake keys)."""
        return {"aws_access_key": "AKIDTEST", "aws_secret_key": "secret", "aws_region": region,
                "base_url": self.url, **overrides}

    def boto3_client_kwargs(self, region: str = "us-east-1", **overrides: Any) -> dict[str, Any]:
        """Arguments for `boto3.client("bedrock-runtime", ...)` pointed at this server (SigV4 with fake keys)."""
        return {"region_name": region, "endpoint_url": self.url, "aws_access_key_id": "AKIDTEST",
                "aws_secret_access_key": "secret", **overrides}

    def bedrock_mantle_client_kwargs(self, region: str = "us-west-2", **overrides: Any) -> dict[str, Any]:
        """Arguments for `anthropic.AnthropicBedrockMantle(...)` (Bedrock's Anthropic-native endpoint: first-party
        SSE under `/anthropic`; an API key, so no SigV4)."""
        return {"api_key": "bedrock-api-key-test", "aws_region": region, "base_url": f"{self.url}/anthropic",
                **overrides}

    def aws_client_kwargs(self, region: str = "eu-west-1", **overrides: Any) -> dict[str, Any]:
        """Arguments for `anthropic.AnthropicAWS(...)` (Claude Platform on AWS: first-party SSE, an API key and a
        workspace id)."""
        return {"api_key": "sk-ant-test", "aws_region": region, "workspace_id": "wrkspc_test", "base_url": self.url,
                **overrides}

    def foundry_client_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Arguments for `anthropic.AnthropicFoundry(...)` (Azure AI Foundry: first-party SSE under `/anthropic`)."""
        return {"api_key": "foundry-key-test", "base_url": f"{self.url}/anthropic", **overrides}

    def google_cloud_client_kwargs(self, location: str = "us-east5", **overrides: Any) -> dict[str, Any]:
        """Arguments for `anthropic.AnthropicGoogleCloud(...)` (Claude on Google Cloud: first-party SSE; no Google
        credentials are looked up)."""
        return {"project": "bedrock-otel-test", "location": location, "workspace_id": "ws-test", "skip_auth": True,
                "base_url": self.url, **overrides}

    def vertex_client_kwargs(self, region: str = "europe-west1", **overrides: Any) -> dict[str, Any]:
        """Arguments for `anthropic.AnthropicVertex(...)` / `AsyncAnthropicVertex(...)` (a fixed access token: no
        Google credentials are looked up). The server answers `:streamRawPredict` / `:rawPredict` with SSE."""
        return {"region": region, "project_id": "bedrock-otel-test", "access_token": "test-token",
                "base_url": self.url, **overrides}


class LoopbackServer(ClientArguments):
    """Serve scenarios on 127.0.0.1 (an ephemeral port by default). Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, scenario: Scenario = NORMAL,
                 first_event_delay: float = 0.0, event_delay: float = 0.0, quota: Quota | None = None) -> None:
        """`first_event_delay`/`event_delay`: mean seconds before the first and each later body part (±50%),
        for realistic time-to-first-chunk figures; 0 (the default) sends at once. `quota`: streamed requests over
        it are throttled, each endpoint its own way (`quota.py`)."""
        self.quota = quota
        self._httpd = _Server((host, port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="bedrock-otel-loopback", daemon=True)
        self._lock = threading.Lock()
        self._default = scenario
        self._registered: dict[str, Scenario] = {}
        self._counters: Counter[tuple[str, str]] = Counter()
        self.pace = (first_event_delay, event_delay) if first_event_delay or event_delay else None
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def play(self, scenario: Scenario | str) -> None:
        """Answer requests without a scenario header with `scenario` from now on."""
        with self._lock:
            self._default = ALL[scenario] if isinstance(scenario, str) else scenario
        self.reset()

    def reset(self) -> None:
        """Forget attempts and recorded requests (attempt counting matters on SDKs without a retry header)."""
        with self._lock:
            self._counters.clear()
            self.requests.clear()

    def register(self, *scenarios: Scenario) -> None:
        """Serve these scenarios by name too (the `x-bedrock-otel-scenario` header), beside `scenarios.ALL`."""
        with self._lock:
            self._registered.update((s.name, s) for s in scenarios)

    def scenario_for(self, name: str | None) -> Scenario:
        if not name:
            return self._default
        return self._registered.get(name) or ALL[name]

    def attempt_for(self, scenario: Scenario, retry_count: str | None, stream_id: str = "") -> int:
        with self._lock:
            counted = self._counters[scenario.name, stream_id]
            self._counters[scenario.name, stream_id] += 1
        return int(retry_count) if retry_count and retry_count.isdigit() else counted

    def record(self, path: str, headers: dict[str, str], scenario: str, attempt: int) -> None:
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "scenario": scenario, "attempt": attempt})


class LoopbackServerProcess(ClientArguments):
    """A `LoopbackServer` in a child process (spawned), so that the threads and memory of the process under
    measurement are the application's alone. `reset()` reaches across; `play()`, `register()` and `requests` do
    not (use scenario headers). A context manager."""

    def __init__(self, **kwargs: Any) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_conn, kwargs), name="bedrock-otel-loopback",
                                        daemon=True)
        self.url = ""

    def start(self) -> LoopbackServerProcess:
        self._process.start()
        self.url = self._conn.recv()
        return self

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def stop(self) -> None:
        if self._process.is_alive():
            self._conn.send("stop")
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> LoopbackServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(conn: Any, kwargs: dict[str, Any]) -> None:
    """The child of `LoopbackServerProcess`: serve until told to stop (or the parent goes away)."""
    with LoopbackServer(**kwargs) as server:
        conn.send(server.url)
        while True:
            try:
                command = conn.recv()
            except EOFError:
                return
            if command == "stop":
                return
            server.reset()
            conn.send("ok")
