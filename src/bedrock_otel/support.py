"""What this release supports and was tested with. noxfile.py builds the CI matrix from these tuples and
`bedrock-otel doctor` reports them, so the README, the matrix and the doctor cannot disagree.

Standard library only: noxfile.py executes this file before bedrock_otel is installed.
"""

from __future__ import annotations

SUPPORTED_ANTHROPIC = "anthropic >= 0.25.0, < 3"


def version_tuple(version: str) -> tuple[int, ...]:
    """`2.14.0` -> (2, 14, 0); a pre-release or local suffix is ignored (`2.15.0rc1` -> (2, 15, 0))."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits or 0))
    return tuple(parts)


# The anthropic SDK versions every test session runs against (on the default Python), oldest to newest: the
# support range's landmarks, where the SDK's streaming changed: the #1472 decoder fix (0.110), the httpx2 switch
# (1.0), the lazy copy()-based stream iterator and built-in tracing (1.14), 2.0, and the newest releases (2.16:
# `_make_sse_decoder(options)`, session-event streams on Bedrock; 2.15.0 before it, whose streaming files are
# 2.14.0's, the newest of the previous round).
TESTED_ANTHROPIC = ("0.25.9", "0.49.0", "0.97.0", "0.109.2", "0.110.0", "0.125.0", "1.0.0", "1.13.0", "1.14.0",
                    "2.0.0", "2.15.0", "2.16.0")
NEWEST_TESTED_ANTHROPIC = TESTED_ANTHROPIC[-1]

DEFAULT_PYTHON = "3.11"
# The other supported Pythons, each with the SDK versions it is tested with: the two ends of the Python range with
# the oldest and the newest SDK each can install (anthropic >= 1.0 needs Python 3.10); 3.10 and 3.12, between
# tested versions, with the newest only.
TESTED_PYTHONS = {"3.9": ("0.25.9", "0.125.0"), "3.10": (NEWEST_TESTED_ANTHROPIC,),
                  "3.12": (NEWEST_TESTED_ANTHROPIC,), "3.13": ("0.25.9", NEWEST_TESTED_ANTHROPIC)}
SUPPORTED_PYTHONS = tuple(sorted({DEFAULT_PYTHON, *TESTED_PYTHONS}, key=version_tuple))

# botocore (boto3's bedrock-runtime streams): every session runs the newest release; these older landmarks run the
# boto3 suite too: the floor of anthropic[bedrock] (`botocore >= 1.31.57`, InvokeModelWithResponseStream) and the
# first with ConverseStream.
TESTED_BOTOCORE = ("1.31.57", "1.34.116")
