"""Apply and restore the patch table, at import time of each target module (wrapt post-import hooks).

`restore()` puts back the very objects that were replaced, so `Stream.__dict__["__stream__"]` is the SDK's
own function again after uninstrumenting.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import wrapt

from .targets import TARGETS, Target

log = logging.getLogger("bedrock_otel")


@dataclass
class Applied:
    owner: Any
    attribute: str
    original: Any
    replacement: Any


class Patcher:
    def __init__(self, targets: Iterable[Target] = TARGETS) -> None:
        self.targets = tuple(targets)
        self.applied: dict[Target, Applied] = {}
        self.skipped: dict[Target, str] = {}
        self.enabled = False
        self._lock = threading.RLock()
        self._hooked_modules: set[str] = set()

    def apply(self) -> None:
        """Patch every target now if its module is imported, else as soon as it is."""
        with self._lock:
            self.enabled = True
            for module_name in dict.fromkeys(t.module for t in self.targets):
                if module_name in self._hooked_modules:
                    module = sys.modules.get(module_name)
                    if module is not None:
                        self._patch_module(module)
                    continue
                self._hooked_modules.add(module_name)
                wrapt.register_post_import_hook(self._patch_module, module_name)

    def restore(self) -> None:
        with self._lock:
            self.enabled = False
            for target, applied in list(self.applied.items()):
                current = applied.owner.__dict__.get(applied.attribute)
                if current is applied.replacement:
                    setattr(applied.owner, applied.attribute, applied.original)
                else:
                    log.debug("bedrock_otel: %s.%s was re-patched by someone else; left as is",
                              target.module, target.qualname)
                del self.applied[target]

    def _patch_module(self, module: ModuleType) -> None:
        with self._lock:
            if not self.enabled:
                return
            for target in self.targets:
                if target.module == module.__name__ and target not in self.applied:
                    self._patch(target, module)

    def _patch(self, target: Target, module: ModuleType) -> None:
        *path, attribute = target.qualname.split(".")
        owner: Any = module
        try:
            for part in path:
                owner = getattr(owner, part)
            original = owner.__dict__[attribute]
        except (AttributeError, KeyError):
            self.skipped[target] = "not present in this version"
            return
        if target.style == "plain":
            replacement = target.wrapper(original)
        else:
            replacement = wrapt.FunctionWrapper(original, target.wrapper)
        setattr(owner, attribute, replacement)
        self.applied[target] = Applied(owner, attribute, original, replacement)
        self.skipped.pop(target, None)
