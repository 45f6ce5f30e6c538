"""Command-line options made from the settings table (`config.SETTINGS`), shared by the subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Callable

from ..config import SETTINGS, ConfigError, Setting


def option_name(setting: Setting) -> str:
    return "--" + setting.name.replace("_", "-")


def setting_type(setting: Setting, option: str | None = None) -> Callable[[str], str]:
    """An argparse `type` validating with the setting's own parser; the error names the option."""

    def check(value: str) -> str:
        try:
            setting.parse(option or option_name(setting), value)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    return check


def add_setting_options(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """One option per setting of `SETTINGS` (or of `names`), with the setting's help and environment variable."""
    group = parser.add_argument_group("instrumentation and exporter settings (default: the environment variable)")
    for setting in SETTINGS:
        if names is not None and setting.name not in names:
            continue
        kwargs: dict[str, Any] = {"dest": setting.name, "default": None, "type": setting_type(setting),
                                  "help": f"{setting.help} [env {setting.env}]"}
        if isinstance(setting.default, bool):
            kwargs.update(nargs="?", const="true", metavar="on|off")
        group.add_argument(option_name(setting), **kwargs)
