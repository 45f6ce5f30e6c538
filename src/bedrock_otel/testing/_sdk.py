"""Facts about the installed anthropic SDK version that change what a caller (and so a test) sees."""

from __future__ import annotations

import anthropic
from packaging.version import Version

SDK = Version(anthropic.__version__)
FIXED_BEDROCK_DECODER = SDK >= Version("0.110.0")  # in-band errors become `error` events
DROPS_TYPELESS = SDK >= Version("1.0.0")
HAS_SDK_TRACING = SDK >= Version("1.14.0")
FIRST_PARTY_YIELDS_UNKNOWN = SDK >= Version("1.16.0")  # before: only whitelisted event names are yielded
