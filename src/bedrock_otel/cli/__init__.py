"""The `bedrock-otel` command: `run` a program instrumented, `demo` the main job, `doctor` the installation,
`dashboards` written into a folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__
from ..config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    from . import dashboards, demo, doctor, run

    parser = argparse.ArgumentParser(prog="bedrock-otel", description=__doc__)
    parser.add_argument("--version", action="version", version=f"bedrock-otel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{run,demo,doctor,dashboards}", required=True)
    for module in (run, demo, doctor, dashboards):
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
