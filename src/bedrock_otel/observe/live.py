"""Every open stream's observer, by the objects its family's hooks find it by: the SDK's HTTP response (and a
Bedrock decoder), botocore's EventStream. One registry for every family; weak, so the client decides their
lifetimes."""

from __future__ import annotations

import weakref
from typing import Any

from .observer import StreamObserver

LIVE: weakref.WeakKeyDictionary[Any, StreamObserver] = weakref.WeakKeyDictionary()


def disown_inherited_streams() -> None:
    """In a forked child: the streams open in the parent at fork are the parent's to count and end."""
    for observer in set(LIVE.values()):
        observer.disown()
    LIVE.clear()
