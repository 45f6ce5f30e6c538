"""The Anthropic SDK family: its seven clients (`Anthropic`, `AnthropicBedrock`, `AnthropicBedrockMantle`,
`AnthropicVertex`, `AnthropicAWS`, `AnthropicFoundry`, `AnthropicGoogleCloud`) and their async twins.

A call is `SyncAPIClient.request(cast_to, options, *, stream=...)` (its `request` here is `(args, kwargs)`); its
attempts are httpx(2) responses; its stream is found by the HTTP response it reads (SDKs >= 1.14 iterate a
`copy()` of the stream the caller holds, and SDKs 0.26-0.42 build a second `Stream` over the same response), and
on Bedrock also by the decoder, for the frames the decoder drops.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from .. import semconv as sc
from ..observe import classify, replay
from ..observe.labels import CallLabels
from ..observe.live import LIVE
from ..observe.observer import StreamObserver, StreamSink
from ..observe.retry import Lookahead
from ..observe.tap import tap
from ..telemetry.spans import server_attributes
from . import Call, Components, Family, numeric_parameters


class SdkFamily(Family):
    components = Components(call="hooks.request", send="hooks.send", stream="hooks.stream", close="hooks.close")

    def call(self, client: Any, request: Any, cap_model: Callable[[str], str]) -> Call:
        """Every call's HTTP attempts are counted; only a Messages stream is observed as a stream (`CHAT_PATHS`):
        a Managed Agents session-events stream is not a chat and is left alone."""
        args, kwargs = request
        options = args[1] if len(args) > 1 else kwargs.get("options")
        url = getattr(options, "url", None)  # a request of unknown shape is observed, as it always was
        chat = not isinstance(url, str) or url.partition("?")[0] in CHAT_PATHS
        return labels(client, options, cap_model), chat and bool(kwargs.get("stream")), None

    def span_attributes(self, client: Any, request: Any) -> dict[str, Any]:
        url = getattr(client, "base_url", None)
        attributes = server_attributes(getattr(url, "host", None), getattr(url, "port", None),
                                       getattr(url, "scheme", ""))
        attributes.update(numeric_parameters(_body(request), sc.REQUEST_PARAMETERS))
        return attributes

    def request_messages(self, request: Any) -> Any:
        body = _body(request)
        return body.get("messages") if isinstance(body, dict) else None

    def returned_stream(self, ctx: StreamObserver, result: Any) -> Any:
        """The HTTP response of the `Stream` (or the raw response wrapping one) the call returned."""
        return getattr(result, "response", None) or getattr(result, "http_response", None)

    def attempt_answered(self, ctx: Any, response: Any) -> None:
        if isinstance(ctx, StreamObserver):  # SDKs <= 1.13 build the Stream before `request()` returns
            LIVE[response] = ctx

    def has_middleware(self, client: Any) -> bool:
        return bool(getattr(client, "_middleware", None))  # `middleware=`, 0.108.0 and later

    def tap(self, response: Any, asynchronous: bool) -> Any:
        return tap(response, asynchronous)

    def read_ahead(self, response: Any) -> tuple[Any, Lookahead | None]:
        return replay.read_ahead(response)

    async def aread_ahead(self, response: Any) -> tuple[Any, Lookahead | None]:
        return await replay.aread_ahead(response)

    def refusal(self, request: Any) -> Any:
        return replay.refusal(request)

    def find(self, stream: Any) -> StreamObserver | None:
        """By the response (an ended stream's observer too: its hooks stay its own); a Bedrock stream's decoder
        too, for the frames it drops."""
        observer = LIVE.get(stream.response)
        if observer is not None:
            decoder = getattr(stream, "_decoder", None)
            if decoder is not None and type(decoder).__name__ == "AWSEventStreamDecoder":
                LIVE[decoder] = observer
        return observer

    def adopt(self, stream: Any, cap_model: Callable[[str], str]) -> tuple[Any, CallLabels] | None:
        """A stream built outside `request()` (by hand, or by a helper over a response): labelled by its client,
        if it reads a Messages stream."""
        response = stream.response
        if not _chat_path(response):
            return None
        return response, labels(stream._client, None, cap_model)


SDK = SdkFamily()


def labels(client: object, options: Any, cap_model: Callable[[str], str]) -> CallLabels:
    """Labels for a call of `client` with `FinalRequestOptions` `options` (read before the SDK rewrites them)."""
    platform = _PLATFORM_BY_CLASS.get(type(client)) or platform_of(client)
    body = getattr(options, "json_data", None)
    raw_model = body.get("model") if isinstance(body, dict) else None
    model = cap_model(raw_model) if isinstance(raw_model, str) and raw_model else ""
    if platform.provider != sc.PROVIDER_BEDROCK:
        profile = ""
    else:  # AnthropicBedrock and Mantle alike: `global.anthropic.…`, `anthropic.claude-sonnet-4-5` (none)
        profile = classify.inference_profile(raw_model) if isinstance(raw_model, str) else "none"
    attribute = platform.region_attribute
    region = getattr(client, "__dict__", _NO_ATTRIBUTES).get(attribute) if attribute else None
    return CallLabels(platform.provider, platform.platform, model, platform.region_label(region), profile)


class Platform(NamedTuple):
    """Where a client's calls go: the provider as the SDK's own tracing names it (`_gen_ai_provider_name`), the
    platform, and the instance attribute holding its region (the instance's own value: Vertex's class-level
    `region` is a cached property that raises when unset)."""

    provider: str
    platform: str
    region_attribute: str = ""
    region_label: Callable[[object], str] = classify.region_label


_VERTEX_REGION = classify.vertex_region_label
# By class name, the first found along a client's MRO: a user's subclass is its base's platform, and AnthropicAWS
# (a subclass of Anthropic) is found before Anthropic. Tenants (Foundry's resource, a workspace id) are not read.
PLATFORMS: dict[str, Platform] = {
    **dict.fromkeys(("AnthropicBedrockMantle", "AsyncAnthropicBedrockMantle", "BaseMantleClient"),
                    Platform(sc.PROVIDER_BEDROCK, sc.PLATFORM_BEDROCK_MANTLE, "aws_region")),
    **dict.fromkeys(("AnthropicBedrock", "AsyncAnthropicBedrock", "BaseBedrockClient"),
                    Platform(sc.PROVIDER_BEDROCK, sc.PLATFORM_BEDROCK, "aws_region")),
    **dict.fromkeys(("AnthropicVertex", "AsyncAnthropicVertex", "BaseVertexClient"),
                    Platform(sc.PROVIDER_VERTEX, sc.PLATFORM_VERTEX, "region", _VERTEX_REGION)),
    **dict.fromkeys(("AnthropicAWS", "AsyncAnthropicAWS"),
                    Platform(sc.PROVIDER_ANTHROPIC, sc.PLATFORM_AWS, "aws_region")),
    **dict.fromkeys(("AnthropicFoundry", "AsyncAnthropicFoundry", "BaseFoundryClient"),
                    Platform(sc.PROVIDER_ANTHROPIC, sc.PLATFORM_FOUNDRY)),
    **dict.fromkeys(("AnthropicGoogleCloud", "AsyncAnthropicGoogleCloud", "BaseGoogleCloudClient"),
                    Platform(sc.PROVIDER_ANTHROPIC, sc.PLATFORM_GOOGLE_CLOUD, "_location", _VERTEX_REGION)),
    **dict.fromkeys(("Anthropic", "AsyncAnthropic", "SyncAPIClient", "AsyncAPIClient"),
                    Platform(sc.PROVIDER_ANTHROPIC, sc.PLATFORM_FIRST_PARTY)),
}
_UNKNOWN = Platform(sc.OTHER, sc.OTHER)
_NO_ATTRIBUTES: dict[str, Any] = {}
_PLATFORM_BY_CLASS: dict[type, Platform] = {}


def platform_of(client: object) -> Platform:
    """The client's platform, from its class hierarchy (cached per class)."""
    cls = type(client)
    platform = _PLATFORM_BY_CLASS.get(cls)
    if platform is None:
        platform = next((PLATFORMS[k.__name__] for k in cls.__mro__ if k.__name__ in PLATFORMS), _UNKNOWN)
        _PLATFORM_BY_CLASS[cls] = platform
    return platform


def dropped_frame(sink: StreamSink, decoder: Any, event: Any) -> None:
    """A Bedrock frame the SDK's decoder dropped (SDK >= 1.0 drops chunks without a type), read as it read it."""
    try:
        observer = LIVE.get(decoder)
        if observer is not None:
            observer.dropped_chunk(_frame_chunk(event.payload))
    except Exception:
        sink.internal_error("hooks.frame")


def _frame_chunk(payload: bytes) -> Any:
    """The decoded chunk inside a frame's payload, or None if it has none (lenient base64, as the decoder's)."""
    try:
        return classify.decode_chunk(classify.bedrock_chunk_bytes(payload, strict=False))
    except Exception:
        return None


# The streams bedrock_otel observes: the Messages API's (and the legacy Text Completions API's), by the SDK's
# own path before a platform client rewrites it, and by the path each platform sends them to
CHAT_PATHS = ("/v1/messages", "/v1/complete")
_CHAT_WIRE_PATHS = (*CHAT_PATHS, "/invoke-with-response-stream", ":streamRawPredict")


def _chat_path(response: Any) -> bool:
    try:
        path = response.request.url.path
    except Exception:  # no request to read: adopted, as it always was
        return True
    return not isinstance(path, str) or path.endswith(_CHAT_WIRE_PATHS)


def _body(request: Any) -> Any:
    args, kwargs = request
    return getattr(args[1] if len(args) > 1 else kwargs.get("options"), "json_data", None)
