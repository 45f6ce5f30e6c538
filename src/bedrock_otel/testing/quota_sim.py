"""The quota simulator: concurrent callers offer about 3x a quota on the loopback server, then the quota comes back.

Callers (threads and asyncio tasks; first-party and Bedrock through the Anthropic SDK, boto3's two stream
operations) each start a call every `period` seconds, or as soon as the last one ended if that took longer: the
load an application offers, which a throttle cannot push back on except by making calls take longer. The quota
is first generous (`warmup_s`), then cut to `quota` for `cut_s` seconds, then restored (`recovery_s`).

Used by `benchmarks/pressure.py` (the comparison table) and `bedrock-otel demo --pressure`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .quota import Quota
from .server import LoopbackServer
from .workload import boto3_stream, make_boto3_client, make_client, request_for

# (lane, sync or async): every caller is one of these, in turn
LANES = (("first_party", "sync"), ("bedrock", "sync"), ("boto3_converse", "sync"), ("boto3_invoke", "sync"),
         ("first_party", "async"), ("bedrock", "async"))
BOTO3_LANES = ("boto3_converse", "boto3_invoke")
BEDROCK_SHARE = 4 / 6  # of the quota: the Bedrock lanes' share of the callers
RESTORED = 10.0  # the restored quota, as a multiple of the cut one: well above the offered load


@dataclass
class Config:
    name: str
    settings: dict[str, Any] | None  # bedrock_otel.instrument(**settings); None: not instrumented
    boto3_retry_mode: str = "standard"


CONFIGS = (
    Config("SDK alone", None),
    Config("retry mode", {"retry": True}),
    Config("retry + pressure", {"retry": True, "pressure": True}),
    Config("retry + botocore adaptive", {"retry": True}, boto3_retry_mode="adaptive"),
)


@dataclass
class Call:
    lane: str
    started: float
    ended: float
    ok: bool


@dataclass
class Result:
    config: str
    quota: float
    offered: float
    cut: tuple[float, float]  # when the quota was cut and restored (monotonic)
    calls: list[Call] = field(default_factory=list)
    admitted: int = 0
    throttled: dict[str, int] = field(default_factory=dict)  # by caller kind: sdk, boto3

    def figures(self, lanes: tuple[str, ...] | None = None) -> dict[str, float | None]:
        """The comparison's figures, over the calls started while the quota was cut (of `lanes`, if given); the
        throttled attempts are all the quota throttled, which it does only while cut (restored, it is 10x)."""
        start, end = self.cut
        during = [c for c in self.calls if start <= c.started < end and (lanes is None or c.lane in lanes)]
        ok = [c for c in during if c.ok]
        latencies = sorted(c.ended - c.started for c in ok)
        throttled = sum(n for kind, n in self.throttled.items()
                        if lanes is None or any(lane.startswith(kind) for lane in lanes))
        return {
            "goodput / quota": len([c for c in self.calls if c.ok and start <= c.ended < end])
            / (end - start) / self.quota if lanes is None else None,
            "throttled attempts per success": throttled / max(len(ok), 1),
            "failed calls": float(len(during) - len(ok)),
            "p50 s": _quantile(latencies, 0.5),
            "p95 s": _quantile(latencies, 0.95),
            "to full rate s": self._recovery() if lanes is None else None,
        }

    def _recovery(self) -> float | None:
        """Seconds from the quota's return to the first second in which successes reach 95 % of the offered load."""
        restored = self.cut[1]
        ends = sorted(c.ended - restored for c in self.calls if c.ok and c.ended >= restored)
        step = 0.25
        t = 0.0
        while t + 1.0 <= (ends[-1] if ends else 0):
            if sum(1 for e in ends if t <= e < t + 1.0) >= 0.95 * self.offered:
                return t
            t += step
        return None


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def run(config: Config, quota: float = 20.0, callers: int = 48, load: float = 3.0, warmup_s: float = 5.0,
        cut_s: float = 60.0, recovery_s: float = 20.0, per_token: bool = False) -> Result:
    """One configuration through warm-up, cut and recovery; the caller instruments nothing itself."""
    import bedrock_otel

    period = callers / (load * quota)
    cost = 1000.0 if per_token else 1.0  # tokens a call asks for on average (max_tokens 100..1900)
    bucket = Quota(quota * RESTORED * cost, per_token=per_token, bedrock_share=BEDROCK_SHARE)
    result = Result(config.name, quota, callers / period, (0.0, 0.0))
    if config.settings is not None:
        bedrock_otel.instrument(metrics="none", traces=False, **config.settings)
    try:
        with LoopbackServer(quota=bucket) as server:
            _drive(server, config, bucket, result, callers, period, quota * cost, warmup_s, cut_s,
                             recovery_s, per_token)
            result.admitted = bucket.counts["admitted"]
            result.throttled = {kind: bucket.counts[f"throttled {kind}"] for kind in ("sdk", "boto3")}
    finally:
        if config.settings is not None:
            bedrock_otel.uninstrument()
    return result


def _drive(server: LoopbackServer, config: Config, bucket: Quota, result: Result, callers: int, period: float,
           cut_rate: float, warmup_s: float, cut_s: float, recovery_s: float, per_token: bool) -> None:
    started = time.monotonic()
    cut_at, restored_at = started + warmup_s, started + warmup_s + cut_s
    stop_at = restored_at + recovery_s
    result.cut = (cut_at, restored_at)
    lock = threading.Lock()
    lanes = LANES if _has_boto3() else tuple(lane for lane in LANES if lane[0] not in BOTO3_LANES)
    boto = make_boto3_client(server, retry_mode=config.boto3_retry_mode, attempts=3) if lanes == LANES else None

    def note(lane: str, t0: float, ok: bool) -> None:
        with lock:
            result.calls.append(Call(lane, t0, time.monotonic(), ok))

    def sync_caller(i: int, lane: str) -> None:
        client = None if lane.startswith("boto3") else make_client(server, lane, "sync", max_retries=2)
        next_at = started + (i % 10) * period / 10
        while (now := time.monotonic()) < stop_at:
            time.sleep(max(0.0, next_at - now))
            t0 = time.monotonic()
            next_at = t0 + period
            note(lane, t0, _one_sync(client, boto, lane, i, per_token))

    async def async_callers(lanes: list[tuple[int, str]]) -> None:
        async def caller(i: int, lane: str) -> None:
            client = make_client(server, lane, "async", max_retries=2)
            next_at = started + (i % 10) * period / 10
            while (now := time.monotonic()) < stop_at:
                await asyncio.sleep(max(0.0, next_at - now))
                t0 = time.monotonic()
                next_at = t0 + period
                note(lane + " async", t0, await _one_async(client, lane, i, per_token))

        await asyncio.gather(*(caller(i, lane) for i, lane in lanes))

    assigned = [(i, lanes[i % len(lanes)]) for i in range(callers)]
    threads = [threading.Thread(target=sync_caller, args=(i, lane), daemon=True)
               for i, (lane, mode) in assigned if mode == "sync"]
    asynchronous = [(i, lane) for i, (lane, mode) in assigned if mode == "async"]
    threads.append(threading.Thread(target=lambda: asyncio.run(async_callers(asynchronous)), daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, cut_at - time.monotonic()))
    bucket.set(cut_rate)
    time.sleep(max(0.0, restored_at - time.monotonic()))
    bucket.set(cut_rate * RESTORED)
    for thread in threads:
        thread.join(timeout=stop_at - time.monotonic() + 120)


def _has_boto3() -> bool:
    try:
        import boto3  # noqa: F401  (anthropic[bedrock] brings it)
    except ImportError:
        return False
    return True


def _request(lane: str, i: int, per_token: bool) -> dict[str, Any]:
    request = request_for(lane, "normal")
    if per_token:
        request["max_tokens"] = 100 + (i * 397) % 1800
    return request


def _one_sync(client: Any, boto: Any, lane: str, i: int, per_token: bool) -> bool:
    try:
        if lane.startswith("boto3"):
            for _event in boto3_stream(boto, lane):
                pass
        else:
            with client.messages.create(stream=True, **_request(lane, i, per_token)) as stream:
                for _event in stream:
                    pass
        return True
    except Exception:
        return False


async def _one_async(client: Any, lane: str, i: int, per_token: bool) -> bool:
    try:
        stream = await client.messages.create(stream=True, **_request(lane, i, per_token))
        async with stream:
            async for _event in stream:
                pass
        return True
    except Exception:
        return False


def table(results: list[Result], lanes: tuple[str, ...] | None = None) -> str:
    """The comparison as a Markdown table, one column per configuration."""
    figures = [r.figures(lanes) for r in results]
    rows = [f"| | {' | '.join(r.config for r in results)} |", f"|---|{'---|' * len(results)}"]
    for name in figures[0]:
        values = [f[name] for f in figures]
        if all(v is None for v in values):
            continue
        cells = ["—" if v is None else f"{v:.0f}" if name == "failed calls" else f"{v:.2f}" for v in values]
        rows.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(rows)
