"""The labels of one call, computed once per call from the SDK client and the request options."""

from __future__ import annotations

from typing import Any, Callable

from .. import semconv as sc
from . import classify


class CallLabels:
    """Provider, model, region and inference profile of a call, with the label tuples the recorders use."""

    __slots__ = ("api", "model", "profile", "provider", "provider_key", "region", "stream_key")

    def __init__(self, provider: str, model: str, region: str = "", profile: str = "",
                 api: str = sc.API_MESSAGES) -> None:
        self.provider = provider
        self.model = model
        self.region = region
        self.profile = profile
        self.api = api
        # value order matches catalog.STREAM_LABELS and catalog.PROVIDER_LABELS
        self.stream_key = (provider, model, region, profile, api)
        self.provider_key = (provider, region)

    def span_attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OPERATION_CHAT,
            sc.PROVIDER: self.provider,
            sc.REQUEST_MODEL: self.model,
            sc.STREAM_API: self.api,
        }
        if self.region:
            attributes[sc.CLOUD_REGION] = self.region
        if self.provider == sc.PROVIDER_BEDROCK:
            attributes[sc.INFERENCE_PROFILE] = self.profile
        return attributes


def labels_for(client: object, options: Any, cap_model: Callable[[str], str]) -> CallLabels:
    """Labels for a call of `client` with `FinalRequestOptions` `options` (read before the SDK rewrites them)."""
    provider = classify.provider_of(client)
    body = getattr(options, "json_data", None)
    raw_model = body.get("model") if isinstance(body, dict) else None
    model = cap_model(raw_model) if isinstance(raw_model, str) and raw_model else ""
    if provider == sc.PROVIDER_VERTEX:
        # the instance's own value: the class-level `region` is a cached property that raises when unset
        region = getattr(client, "__dict__", {}).get("region")
        return CallLabels(provider, model, classify.vertex_region_label(region))
    if provider != sc.PROVIDER_BEDROCK:
        return CallLabels(provider, model)
    profile = classify.inference_profile(raw_model) if isinstance(raw_model, str) else "none"
    return CallLabels(provider, model, classify.region_label(getattr(client, "aws_region", None)), profile)
