"""Drive the real installed SDK, and boto3's bedrock-runtime client, against a `LoopbackServer`: one stream the
way an application reads it, or a concurrent mix of providers, sync/async, `create(stream=True)`/helpers, boto3's
two stream calls and faults (the demo's traffic).

Each stream sends the `x-bedrock-otel-scenario` header (what the server answers) and `x-bedrock-otel-stream`
(so scripted retries count attempts per stream, even under concurrency and on SDKs without a retry header).
boto3 has no per-call headers: a client from `make_boto3_client` adds them from `boto3_scenario(...)`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

from .. import semconv as sc
from . import scenarios
from .server import SCENARIO_HEADER, STREAM_HEADER, ClientArguments

PROVIDERS = ("first_party", "bedrock", "vertex")  # Anthropic, AnthropicBedrock, AnthropicVertex (and the Async ones)
# The SDK's later platform clients (and their Async twins), all first-party SSE: `(sync class, first version)`
PLATFORM_CLIENTS = {"bedrock_mantle": ("AnthropicBedrockMantle", "0.91.0"), "aws": ("AnthropicAWS", "0.88.0"),
                    "foundry": ("AnthropicFoundry", "0.74.0"), "google_cloud": ("AnthropicGoogleCloud", "0.117.0")}
# boto3's bedrock-runtime client: invoke_model_with_response_stream, converse_stream (sync: boto3 has no async)
BOTO3 = ("boto3_invoke", "boto3_converse")
CLIENTS = (*PROVIDERS, *BOTO3)
# the gen_ai.provider.name and anthropic.platform each of them is recorded under, and the anthropic.stream.api
PROVIDER_NAMES = {"first_party": sc.PROVIDER_ANTHROPIC, "bedrock": sc.PROVIDER_BEDROCK, "vertex": sc.PROVIDER_VERTEX,
                  "bedrock_mantle": sc.PROVIDER_BEDROCK, "aws": sc.PROVIDER_ANTHROPIC,
                  "foundry": sc.PROVIDER_ANTHROPIC, "google_cloud": sc.PROVIDER_ANTHROPIC,
                  "boto3_invoke": sc.PROVIDER_BEDROCK, "boto3_converse": sc.PROVIDER_BEDROCK}
PLATFORM_NAMES = {"first_party": sc.PLATFORM_FIRST_PARTY, "bedrock": sc.PLATFORM_BEDROCK,
                  "vertex": sc.PLATFORM_VERTEX, "bedrock_mantle": sc.PLATFORM_BEDROCK_MANTLE, "aws": sc.PLATFORM_AWS,
                  "foundry": sc.PLATFORM_FOUNDRY, "google_cloud": sc.PLATFORM_GOOGLE_CLOUD,
                  "boto3_invoke": sc.PLATFORM_BEDROCK, "boto3_converse": sc.PLATFORM_BEDROCK}
STREAM_APIS = {**dict.fromkeys((*PROVIDERS, *PLATFORM_CLIENTS), sc.API_MESSAGES), "boto3_invoke": sc.API_INVOKE,
               "boto3_converse": sc.API_CONVERSE}
BOTO3_RETRY_MODES = ("legacy", "standard", "adaptive")
MODES = ("sync", "async")
APIS = ("create", "helper", "beta_create", "beta_helper", "next")

# The demo's default fault mix: scenario name -> share of streams (the rest are normal, some with a ping).
DEFAULT_FAULTS: dict[str, float] = {
    # #1472: a rate_limit_error as the first chunk of an HTTP 200 stream, transient (the next attempt succeeds:
    # only retry mode makes one); throttlingException frames first, likewise
    "rate_limited_then_ok": 0.05,
    "throttled_then_ok": 0.02,
    "error_mid": 0.03,  # overloaded_error mid-stream
    "exception_throttlingException": 0.03,  # Bedrock throttling exception frame (an SSE error first-party)
    "http_429_then_ok": 0.05,  # HTTP 429 with retry-after, then the SDK's retry succeeds
    "truncated": 0.02,  # the body ends early
}
HEALTHY = ("normal", "ping")
CLIENT_TIMEOUT_S = 60.0  # the workload's clients, for every phase of a request (stall scenarios set their own)


@dataclass
class Seen:
    """What the application observed: items (type and content) and the exception, if any."""

    items: list[str]
    error: tuple[str, str] | None
    final: str | None = None


@dataclass(frozen=True)
class Planned:
    """One stream of a workload."""

    provider: str
    mode: str
    api: str
    scenario: str
    stream_id: str


def make_client(server: ClientArguments, provider: str, mode: str, **options: Any) -> Any:
    """`provider`'s client (a name of PROVIDERS or PLATFORM_CLIENTS), sync or async, pointed at `server`."""
    import anthropic

    if provider == "bedrock":
        cls = anthropic.AsyncAnthropicBedrock if mode == "async" else anthropic.AnthropicBedrock
        return cls(**server.bedrock_client_kwargs(**options))
    if provider == "vertex":
        cls = anthropic.AsyncAnthropicVertex if mode == "async" else anthropic.AnthropicVertex
        return cls(**server.vertex_client_kwargs(**options))
    if provider in PLATFORM_CLIENTS:
        missing = missing_client(provider)
        if missing:
            raise ValueError(missing)
        return platform_client_class(provider, mode)(**getattr(server, f"{provider}_client_kwargs")(**options))
    cls = anthropic.AsyncAnthropic if mode == "async" else anthropic.Anthropic
    return cls(**server.anthropic_client_kwargs(**options))


def platform_client_class(provider: str, mode: str = "sync") -> Any:
    """The installed SDK's class for a PLATFORM_CLIENTS name, or None if this version has none."""
    import anthropic

    name = PLATFORM_CLIENTS[provider][0]
    return getattr(anthropic, f"Async{name}" if mode == "async" else name, None)


def missing_client(provider: str) -> str | None:
    """Why this SDK version cannot build `provider`'s client (a PLATFORM_CLIENTS name it predates), else None."""
    if provider not in PLATFORM_CLIENTS or platform_client_class(provider) is not None:
        return None
    import anthropic

    name, first = PLATFORM_CLIENTS[provider]
    return f"anthropic {anthropic.__version__} has no {name} (from {first})"


def demo_clients(boto3: bool) -> tuple[str, ...]:
    """What the demo drives: PROVIDERS, Bedrock's Anthropic-native endpoint (Mantle) beside Bedrock where this SDK
    has it (0.91.0 and later), and boto3's two stream calls if boto3 is installed."""
    mantle = () if missing_client("bedrock_mantle") else ("bedrock_mantle",)
    return (*PROVIDERS, *mantle, *(BOTO3 if boto3 else ()))


def model_for(provider: str) -> str:
    """Bedrock's model ids (an inference profile's) on Bedrock, Mantle and boto3; first-party ids elsewhere."""
    bedrock = provider in ("bedrock", "bedrock_mantle") or provider in BOTO3
    return scenarios.BEDROCK_MODEL if bedrock else scenarios.MODEL


# -- boto3 --------------------------------------------------------------------------------------------------

_BOTO3_HEADERS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "bedrock_otel_boto3_headers", default=None)


def make_boto3_client(server: ClientArguments, retry_mode: str = "standard", attempts: int = 3,
                      read_timeout: float = CLIENT_TIMEOUT_S, region: str = "us-east-1", **config: Any) -> Any:
    """A boto3 `bedrock-runtime` client for `region` pointed at `server`, with botocore's `retry_mode` and at most
    `attempts` attempts per call (more `botocore.config.Config` options in `config`); it sends the scenario
    headers set with `boto3_scenario`."""
    import boto3
    from botocore.config import Config

    settings = Config(retries={"mode": retry_mode, "total_max_attempts": attempts}, read_timeout=read_timeout,
                      connect_timeout=CLIENT_TIMEOUT_S, **config)
    client = boto3.client("bedrock-runtime", config=settings, **server.boto3_client_kwargs(region))
    client.meta.events.register("before-sign.bedrock-runtime.*", _scenario_headers)
    return client


def _scenario_headers(request: Any, **_: Any) -> None:
    for name, value in (_BOTO3_HEADERS.get() or {}).items():
        request.headers[name] = value


@contextmanager
def boto3_scenario(scenario: str, stream_id: str = "") -> Iterator[None]:
    """Calls of clients from `make_boto3_client` in this block ask the server for `scenario`."""
    headers = {SCENARIO_HEADER: scenario, **({STREAM_HEADER: stream_id} if stream_id else {})}
    token = _BOTO3_HEADERS.set(headers)
    try:
        yield
    finally:
        _BOTO3_HEADERS.reset(token)


def boto3_stream(client: Any, kind: str, model: str = scenarios.BEDROCK_MODEL) -> Any:
    """Start one stream the way applications do; return botocore's EventStream."""
    if kind == "boto3_invoke":
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 16,
                "messages": [{"role": "user", "content": "hi"}]}
        return client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))["body"]
    messages = [{"role": "user", "content": [{"text": "hi"}]}]
    return client.converse_stream(modelId=model, messages=messages, inferenceConfig={"maxTokens": 16})["stream"]


def consume_boto3(client: Any, kind: str, scenario: str, stream_id: str = "") -> Seen:
    """Read one boto3 stream to its end; the exception (class and message, which carries the AWS error code)
    is caught and kept."""
    items: list[str] = []
    with boto3_scenario(scenario, stream_id):
        try:
            for event in boto3_stream(client, kind):
                items.append(repr(event))
        except Exception as exc:
            return Seen(items, (type(exc).__name__, str(exc)))
    return Seen(items, None)


def request_for(provider: str, scenario: str, stream_id: str = "") -> dict[str, Any]:
    headers = {SCENARIO_HEADER: scenario}
    if stream_id:
        headers[STREAM_HEADER] = stream_id
    request = dict(model=model_for(provider), max_tokens=16, messages=[{"role": "user", "content": "hi"}],
                   extra_headers=headers)
    read_timeout = scenarios.ALL[scenario].read_timeout if scenario in scenarios.ALL else None
    if read_timeout is not None:  # a stalling server: per request, as old SDKs default create() to 600 s
        request["timeout"] = read_timeout
    return request


def api_available(client: Any, api: str) -> bool:
    """Whether this SDK version offers `api` on this client (e.g. Bedrock beta helpers came late)."""
    messages = getattr(getattr(client, "beta", None), "messages", None) if api.startswith("beta") else client.messages
    return messages is not None and hasattr(messages, "stream" if api.endswith("helper") else "create")


def _summary(item: Any) -> str:
    to_dict = getattr(item, "to_dict", None)
    body = to_dict() if callable(to_dict) else getattr(item, "__dict__", item)
    return f"{type(item).__name__}:{body!r}"


def _messages(client: Any, api: str) -> Any:
    return client.beta.messages if api.startswith("beta") else client.messages


def consume(client: Any, provider: str, api: str, scenario: str, stream_id: str = "") -> Seen:
    """Read one stream with a sync client the way a careful application does (in a `with` block, so a loop body
    that raises closes the stream: a stream left to the cyclic garbage collector can deadlock httpcore's
    connection pool, encode/httpcore#990); exceptions are caught and kept."""
    items: list[str] = []
    final = None
    request = request_for(provider, scenario, stream_id)
    try:
        messages = _messages(client, api)
        if api.endswith("helper"):
            with messages.stream(**request) as stream:
                for event in stream:
                    items.append(_summary(event))
                final = _summary(stream.get_final_message())
        elif api == "next":
            with messages.create(stream=True, **request) as stream:
                while True:
                    try:
                        items.append(_summary(next(stream)))
                    except StopIteration:
                        break
        else:
            with messages.create(stream=True, **request) as stream:
                for event in stream:
                    items.append(_summary(event))
    except Exception as exc:
        return Seen(items, (type(exc).__name__, str(exc)), final)
    return Seen(items, None, final)


async def aconsume(client: Any, provider: str, api: str, scenario: str, stream_id: str = "") -> Seen:
    """The async twin of `consume`."""
    items: list[str] = []
    final = None
    request = request_for(provider, scenario, stream_id)
    try:
        messages = _messages(client, api)
        if api.endswith("helper"):
            async with messages.stream(**request) as stream:
                async for event in stream:
                    items.append(_summary(event))
                final = _summary(await stream.get_final_message())
        elif api == "next":
            async with await messages.create(stream=True, **request) as stream:
                while True:
                    try:
                        items.append(_summary(await stream.__anext__()))
                    except StopAsyncIteration:
                        break
        else:
            async with await messages.create(stream=True, **request) as stream:
                async for event in stream:
                    items.append(_summary(event))
    except Exception as exc:
        return Seen(items, (type(exc).__name__, str(exc)), final)
    return Seen(items, None, final)


# -- a concurrent mix ---------------------------------------------------------------------------------------


def plan(streams: int, faults: Mapping[str, float] = DEFAULT_FAULTS, seed: int = 0,
         apis: tuple[str, ...] = ("create", "helper"), clients: tuple[str, ...] = PROVIDERS) -> list[Planned]:
    """`streams` streams: faults at their rates (a share in [0, 1]), the rest healthy; clients (`CLIENTS`), modes
    and APIs spread evenly (boto3 streams are sync). Deterministic for a seed."""
    unknown = sorted(set(faults) - set(scenarios.ALL))
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; accepted: {', '.join(sorted(scenarios.ALL))}")
    if any(not 0 <= rate <= 1 for rate in faults.values()) or sum(faults.values()) > 1:
        raise ValueError("fault rates must be between 0 and 1 and add up to at most 1")
    rng = random.Random(seed)
    names = [*faults, "_healthy"]
    weights = [*faults.values(), 1 - sum(faults.values())]
    planned = []
    for i in range(streams):
        scenario = rng.choices(names, weights)[0]
        if scenario == "_healthy":
            scenario = HEALTHY[rng.random() < 0.1]
        n = len(clients)
        kind = clients[i % n]
        mode = "sync" if kind in BOTO3 else MODES[(i // n) % 2]
        planned.append(Planned(kind, mode, apis[(i // (2 * n)) % len(apis)], scenario, f"s{seed}-{i}"))
    return planned


def run(server: ClientArguments, streams: list[Planned], concurrency: int = 8,
        progress: Callable[[int], None] | None = None, tasks: int | None = None) -> Counter[str]:
    """Run the planned streams, sync ones on `concurrency` threads and async ones as `tasks` (default
    `concurrency`) tasks at a time, both at once. Returns how the application fared: the exception class names
    it caught, or "ok"."""
    results: Counter[str] = Counter()
    lock = threading.Lock()

    def done(seen: Seen) -> None:
        with lock:
            results[seen.error[0] if seen.error else "ok"] += 1
            if progress is not None:
                progress(sum(results.values()))

    sync = [p for p in streams if p.mode == "sync"]
    kinds = sorted({p.provider for p in streams if p.provider not in BOTO3})
    # a generous connect timeout: hundreds of connects at once on a busy machine outlast the SDK's 5 s default
    clients = {provider: make_client(server, provider, "sync", timeout=CLIENT_TIMEOUT_S) for provider in kinds}
    if any(p.provider in BOTO3 for p in streams):
        boto3_client = make_boto3_client(server, max_pool_connections=concurrency)
        clients.update(dict.fromkeys(BOTO3, boto3_client))

    def one(p: Planned) -> None:
        if p.provider in BOTO3:
            done(consume_boto3(clients[p.provider], p.provider, p.scenario, p.stream_id))
        else:
            done(consume(clients[p.provider], p.provider, p.api, p.scenario, p.stream_id))

    async def run_async() -> None:
        aclients = {provider: make_client(server, provider, "async", timeout=CLIENT_TIMEOUT_S) for provider in kinds}
        gate = asyncio.Semaphore(tasks or concurrency)

        async def aone(p: Planned) -> None:
            async with gate:
                done(await aconsume(aclients[p.provider], p.provider, p.api, p.scenario, p.stream_id))

        try:
            await asyncio.gather(*(aone(p) for p in streams if p.mode == "async"))
        finally:
            for client in aclients.values():
                await client.close()

    async_thread = threading.Thread(target=asyncio.run, args=(run_async(),), name="workload-async")
    async_thread.start()
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="workload-sync") as pool:
            list(pool.map(one, sync))
    finally:
        async_thread.join()
        for client in {id(c): c for c in clients.values()}.values():
            client.close()
    return results
