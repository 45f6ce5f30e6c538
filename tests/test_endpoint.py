"""The /metrics endpoint under hostile or careless clients: loopback by default, /metrics only, bad requests
answered with a clean 4xx, idle connections closed, and a scrape flood from loopback shed without harm."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import bedrock_otel
from bedrock_otel.exporters import prometheus as endpoint

pytestmark = pytest.mark.sdk_independent  # see noxfile.py: oldest and newest SDK sessions, floors


@pytest.fixture()
def server() -> Any:
    with bedrock_otel.start_metrics_server(0, registry=CollectorRegistry()) as running:
        yield running


def _raw(server: Any, data: bytes) -> bytes:
    """Send raw bytes and read the whole answer (the server closes the connection after it)."""
    with socket.create_connection((server.addr, server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    if not answer.startswith(b"HTTP/"):  # a request line without a version: the standard library answers HTTP/0.9
        return int(answer.split(b"Error code: ", 1)[1][:3])
    return int(answer.split(b" ", 2)[1])


def test_binds_to_loopback_by_default(server: Any) -> None:
    assert server.addr == "127.0.0.1"


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    (b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    (b"GET /debug HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"GET /metrics/../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 405),
    (b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", 413),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 413),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
    (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"v" * 70_000 + b"\r\n\r\n", 431),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n", 400),
    (b"NONSENSE\r\n\r\n", 400),
], ids=["get", "head", "other-path", "traversal", "post", "delete", "body", "chunked-body", "long-line",
        "many-headers", "long-header", "tls-hello", "garbage"])
def test_answers_only_scrapes_and_rejects_the_rest_cleanly(server: Any, request_bytes: bytes, status: int) -> None:
    answer = _raw(server, request_bytes)
    assert _status(answer) == status
    if status != 200:
        assert b"python_gc" not in answer and b"# HELP" not in answer  # no metrics on a rejected request
    with urllib.request.urlopen(server.url, timeout=5) as ok:  # and the endpoint goes on serving
        assert ok.status == 200


def test_idle_connections_hold_no_scrape_back(server: Any) -> None:
    idle = [socket.create_connection((server.addr, server.port), timeout=10)
            for _ in range(endpoint.MAX_CONNECTIONS // 2)]
    try:
        started = time.monotonic()
        with urllib.request.urlopen(server.url, timeout=5) as ok:
            assert ok.status == 200
        assert time.monotonic() - started < 2
    finally:
        for sock in idle:
            sock.close()


def test_idle_connections_are_closed_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoint._QuietHandler, "timeout", 0.5)
    with bedrock_otel.start_metrics_server(0, registry=CollectorRegistry()) as server:
        with socket.create_connection((server.addr, server.port), timeout=5) as sock:
            sock.sendall(b"GET /metr")  # and then nothing more
            started = time.monotonic()
            assert sock.recv(1024) == b""  # the server hung up on us
            assert time.monotonic() - started < 4


def test_survives_a_scrape_flood() -> None:
    """16 loopback clients send 2,400 scrapes as fast as they can (bounded in count and time): every answer is a
    200 or a quick 503, the server threads go back to zero and the endpoint serves normally afterwards."""
    registry = CollectorRegistry()
    with bedrock_otel.start_metrics_server(0, registry=registry) as server:
        baseline = threading.active_count()
        deadline = time.monotonic() + 60
        statuses: Counter[int] = Counter()
        lock = threading.Lock()

        def client(_: int) -> None:
            for _ in range(150):
                if time.monotonic() > deadline:
                    return
                try:
                    with urllib.request.urlopen(server.url, timeout=10) as response:
                        response.read()
                        status = response.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                with lock:
                    statuses[status] += 1

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(client, range(16)))
        elapsed = time.monotonic() - started
        print(f"\n  flood: {sum(statuses.values())} scrapes in {elapsed:.1f} s, answers {dict(statuses)}")
        assert set(statuses) <= {200, 503} and statuses[200] >= 0.9 * sum(statuses.values())
        assert sum(statuses.values()) == 2400
        for _ in range(50):
            if threading.active_count() <= baseline:
                break
            time.sleep(0.1)
        assert threading.active_count() <= baseline
        with urllib.request.urlopen(server.url, timeout=5) as ok:
            assert ok.status == 200


def test_connections_beyond_the_limit_are_shed_with_503(server: Any) -> None:
    idle = [socket.create_connection((server.addr, server.port), timeout=10) for _ in range(endpoint.MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)  # every slot is now held by a connection that sends nothing
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as shed:
            urllib.request.urlopen(server.url, timeout=5)
        assert shed.value.code == 503 and time.monotonic() - started < 2
    finally:
        for sock in idle:
            sock.close()
    for _ in range(50):  # the slots come back as the idle connections close
        try:
            with urllib.request.urlopen(server.url, timeout=5) as ok:
                assert ok.status == 200
                return
        except urllib.error.HTTPError:
            time.sleep(0.1)
    pytest.fail("the endpoint did not recover after the idle connections closed")
