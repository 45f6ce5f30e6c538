"""A loopback HTTP server that speaks Bedrock's invoke-with-response-stream and the first-party Messages API.

Which scenario a request gets: the `x-bedrock-otel-scenario` request header (pass it with the SDK's
`extra_headers=`), else the one set with `play()`. The attempt number (for scripted retries) comes from the
SDK's `x-stainless-retry-count` header, or on SDKs that do not send it from a counter per scenario and
`x-bedrock-otel-stream` header (a per-stream id, so concurrent streams do not share a count).
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
from .scenarios import (
    ALL,
    NORMAL,
    RATE_LIMIT_HEADERS,
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
        streaming = self.path.endswith("invoke-with-response-stream") or (not bedrock and body.get("stream"))
        scenario = self.server.owner.scenario_for(self.headers.get(SCENARIO_HEADER))
        attempt = self.server.owner.attempt_for(scenario, self.headers.get("x-stainless-retry-count"),
                                                self.headers.get(STREAM_HEADER, ""))
        self.server.owner.record(self.path, dict(self.headers), scenario.name, attempt)
        reply = scenario.reply_for(attempt)
        if reply.json_body is not None or not streaming:
            self._send_json(reply, bedrock)
        else:
            self._send_stream(reply, bedrock)

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
        if bedrock and reply.status >= 400:
            payload = {"message": payload.get("error", {}).get("message", "error")}
        data = json.dumps(payload).encode()
        self.send_response(reply.status)
        self.send_header("content-type", "application/json")
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
        encode = encode_bedrock if bedrock else encode_sse
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

    def vertex_client_kwargs(self, region: str = "europe-west1", **overrides: Any) -> dict[str, Any]:
        """Arguments for `anthropic.AnthropicVertex(...)` / `AsyncAnthropicVertex(...)` (a fixed access token: no
        Google credentials are looked up). The server answers `:streamRawPredict` / `:rawPredict` with SSE."""
        return {"region": region, "project_id": "bedrock-otel-test", "access_token": "test-token",
                "base_url": self.url, **overrides}


class LoopbackServer(ClientArguments):
    """Serve scenarios on 127.0.0.1 (an ephemeral port by default). Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, scenario: Scenario = NORMAL,
                 first_event_delay: float = 0.0, event_delay: float = 0.0) -> None:
        """`first_event_delay`/`event_delay`: mean seconds before the first and each later body part (±50%),
        for realistic time-to-first-chunk figures; 0 (the default) sends at once."""
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
