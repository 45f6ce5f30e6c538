"""The `bedrock-otel` command: `run` a program instrumented, `demo` the main job, `doctor` the installation."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, Callable

from .._version import __version__
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


def build_parser() -> argparse.ArgumentParser:
    from . import demo, doctor, run

    parser = argparse.ArgumentParser(prog="bedrock-otel", description=__doc__)
    parser.add_argument("--version", action="version", version=f"bedrock-otel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{run,demo,doctor}", required=True)
    for module in (run, demo, doctor):
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        parser.exit(2, f"bedrock-otel {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        return 130
