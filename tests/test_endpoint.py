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

pytestmark = pytest.mark.sdk_independent  # see noxfile.py: the two ends of the Python range, and the floors


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


def _stalled_scrapers(server: Any, count: int) -> list[socket.socket]:
    """Scrapers that ask for /metrics and never read the answer (their receive buffers kept small, so the
    server's write of a big scrape blocks in each of their threads)."""
    stalled = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((server.addr, server.port))
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        stalled.append(sock)
    return stalled


def test_stalled_scrapers_block_no_stream_no_other_scrape_and_no_shutdown(bedrock_otel_server: Any) -> None:
    """Scrapers that never read an 8 MB answer, their threads blocked writing it: a stream is recorded, another
    scrape is served and the endpoint closes, each promptly."""
    from prometheus_client import Counter

    from bedrock_otel.testing.capture import CapturedTelemetry
    from bedrock_otel.testing.workload import consume, make_client

    with CapturedTelemetry(prometheus_port=0) as telemetry:
        padding = Counter("padding", "series to make the scrape big", ["key"], registry=telemetry.registry)
        # an 8 MB answer, more than the kernel buffers for a reader that stalls; made of 2,000 series with long
        # label values, not 100,000 short ones, so rendering it takes ~0.1 s, not ~1.5 s that a loaded CI turned
        # into 6 (the bounds below are about blocking, not about render speed)
        for i in range(2000):
            padding.labels(f"value-{i:06d}-" + "x" * 2000).inc()
        server = bedrock_otel.metrics_server()
        assert server is not None
        before = threading.active_count()
        stalled = _stalled_scrapers(server, 3)
        try:
            deadline = time.monotonic() + 30  # the scrapes are rendered (CPU), then their threads block writing
            while time.monotonic() < deadline and (_busy_rendering() or threading.active_count() - before < 3):
                time.sleep(0.2)
            time.sleep(0.5)
            assert threading.active_count() - before == len(stalled)  # every one of them is stuck, not done
            started = time.monotonic()
            seen = consume(make_client(bedrock_otel_server, "first_party", "sync"), "first_party", "create", "normal")
            assert seen.error is None and time.monotonic() - started < 2
            started = time.monotonic()
            with urllib.request.urlopen(server.url, timeout=10) as ok:
                assert ok.status == 200 and b'anthropic_streams_total{' in ok.read()
            assert time.monotonic() - started < 5
            started = time.monotonic()
            server.close()
            assert time.monotonic() - started < 2
        finally:
            for sock in stalled:
                sock.close()


def _busy_rendering() -> bool:
    """Whether a handler thread is still in prometheus_client's exposition code (not yet blocked in a write)."""
    import sys

    for frame in sys._current_frames().values():
        while frame is not None:
            if frame.f_code.co_name == "generate_latest":
                return True
            frame = frame.f_back
    return False


# A program that serves /metrics, prints the port, and ends its main thread while the parent holds a stalled
# scrape and an idle connection open
SERVES_AND_ENDS = """
import sys, time
import bedrock_otel
bedrock_otel.instrument(prometheus_port=0)
print(bedrock_otel.metrics_server().port, flush=True)
sys.stdin.readline()
"""


def test_the_endpoint_never_keeps_the_process_alive_at_exit() -> None:
    import subprocess
    import sys

    from procs import child_env

    child = subprocess.Popen([sys.executable, "-c", SERVES_AND_ENDS], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        server = type("Server", (), {"addr": "127.0.0.1", "port": port})()
        held = [*_stalled_scrapers(server, 3), socket.create_connection(("127.0.0.1", port))]
        time.sleep(0.5)
        started = time.monotonic()
        child.stdin.write("done\n")
        child.stdin.flush()
        child.wait(timeout=10)
        assert time.monotonic() - started < 2 and child.returncode == 0
    finally:
        child.kill()
        for sock in locals().get("held", []):
            sock.close()
