"""The version matrix runs the SDK it claims to run."""

import os

import anthropic


def test_installed_sdk_is_the_one_the_session_asked_for() -> None:
    expected = os.environ.get("BEDROCK_OTEL_EXPECT_ANTHROPIC")
    if expected:  # set by noxfile.py; a plain `pytest` run tests whatever is installed
        assert anthropic.__version__ == expected
