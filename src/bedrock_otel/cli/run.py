"""Run a program with bedrock_otel auto-instrumentation, without changing the program.

    bedrock-otel run [options] -- python app.py [args...]

Options become the environment variables named in their help (as `opentelemetry-instrument` does), and a
sitecustomize on PYTHONPATH instruments every Python interpreter the command starts. Without any exporter
option or variable, the /metrics endpoint is served on 127.0.0.1:9464.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from .. import exporters
from ..config import DEFAULT_PROMETHEUS_PORT, SETTINGS, Settings, setting
from ..exporters import otlp
from .options import add_setting_options

NAME = "run"
HELP = "run a program auto-instrumented (metrics endpoint and/or OTLP)"
BOOTSTRAP = Path(__file__).resolve().parent.parent / "bootstrap"
PORT_ENV = setting("prometheus_port").env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_options(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the program and its arguments, after --")


def environment(args: argparse.Namespace, base: dict[str, str]) -> tuple[dict[str, str], Settings]:
    """The child's environment: options as their variables, the endpoint by default, the bootstrap path.
    Validates the result, so a bad variable fails here, naming it, rather than in the child."""
    env = dict(base)
    for declared in SETTINGS:
        value = getattr(args, declared.name)
        if value is not None:
            env[declared.env] = value
    settings = Settings.load({}, environ=env)
    if exporters.prometheus_port(settings) is None and not any(
            otlp.exporters_for(signal, settings, env) for signal in (otlp.TRACES, otlp.METRICS)):
        env[PORT_ENV] = str(DEFAULT_PROMETHEUS_PORT)
        settings = Settings.load({}, environ=env)
    exporters.check(settings)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BOOTSTRAP), base.get("PYTHONPATH", "")) if p)
    return env, settings


def main(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        sys.stderr.write("bedrock-otel run: error: no command given; usage: bedrock-otel run [options] -- "
                         "python app.py\n")
        return 2
    env, settings = environment(args, dict(os.environ))
    executable = shutil.which(command[0], path=env.get("PATH"))
    if executable is None:
        sys.stderr.write(f"bedrock-otel run: error: command not found: {command[0]}\n")
        return 127
    port = exporters.prometheus_port(settings)
    if port is not None:
        sys.stderr.write(f"bedrock-otel run: metrics at http://{settings.prometheus_addr}:{port}/metrics\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, command, env)
    return 0  # not reached
