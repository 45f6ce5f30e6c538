"""The labels of one call, computed once per call by its client family (`families/`)."""

from __future__ import annotations

from typing import Any

from .. import semconv as sc


class CallLabels:
    """Provider, platform, model, region and inference profile of a call, with the label tuples the recorders
    use."""

    __slots__ = ("api", "model", "platform", "pressure_key", "profile", "provider", "provider_key", "region",
                 "stream_key")

    def __init__(self, provider: str, platform: str, model: str, region: str = "", profile: str = "",
                 api: str = sc.API_MESSAGES) -> None:
        self.provider = provider
        self.platform = platform
        self.model = model
        self.region = region
        self.profile = profile
        self.api = api
        # value order matches catalog.STREAM_LABELS and catalog.PROVIDER_LABELS
        self.stream_key = (provider, platform, model, region, profile, api)
        self.provider_key = (provider, platform, region)
        self.pressure_key = (provider, platform, model, region)  # catalog.PRESSURE_LABELS: where one quota applies

    def span_attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OPERATION_CHAT,
            sc.PROVIDER: self.provider,
            sc.PLATFORM: self.platform,
            sc.REQUEST_MODEL: self.model,
            sc.STREAM_API: self.api,
        }
        if self.region:
            attributes[sc.CLOUD_REGION] = self.region
        if self.provider == sc.PROVIDER_BEDROCK:
            attributes[sc.INFERENCE_PROFILE] = self.profile
        return attributes
