"""Exit time of the same program when its telemetry backend misbehaves: without telemetry, with the bare
OpenTelemetry SDK pipeline (BatchSpanProcessor + PeriodicExportingMetricReader with the OTLP exporters, as an
application sets it up itself), and with bedrock_otel (`bedrock-otel run`, which builds its own pipelines).

The program streams five times from a loopback Bedrock server and does 0.7 s of its own work. Each backend is a
`bedrock_otel.testing.broken_backend.BrokenOtlpBackend` (slow: 20 s late; unavailable: retry-after 30 s).

    python benchmarks/backend_outage.py                      # every mode, both protocols
    python benchmarks/backend_outage.py --modes refuse,blackhole --protocols grpc
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "src"))

from bedrock_otel.testing.broken_backend import MODES, PROTOCOLS, BrokenOtlpBackend

PROGRAM = '''
import sys, time
import anthropic
from bedrock_otel.testing import LoopbackServer

if "--sdk-pipeline" in sys.argv:  # what an application does for itself with the OpenTelemetry SDK
    import os
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]))
    tracer, streams = trace.get_tracer("app"), metrics.get_meter("app").create_counter("app.streams")
else:
    tracer = streams = None

with LoopbackServer() as server:
    client = anthropic.AnthropicBedrock(**server.bedrock_client_kwargs())
    for _ in range(5):
        span = tracer.start_span("chat") if tracer else None
        for _event in client.messages.create(model="global.anthropic.claude-opus-4-7", max_tokens=8, stream=True,
                                             messages=[{"role": "user", "content": "hi"}]):
            pass
        if span:
            span.end()
            streams.add(1)
    time.sleep(0.7)
'''


def _run(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return time.monotonic() - started, len(result.stderr.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(m for m in MODES if m != "down_then_up"))
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    program = Path(tempfile.mkdtemp(prefix="bedrock-otel-outage-")) / "app.py"
    program.write_text(PROGRAM)
    python, cli = sys.executable, str(Path(sys.executable).parent / "bedrock-otel")
    bare, _ = _run([python, str(program)], dict(os.environ))
    rows = []
    print(f"no telemetry: {bare:.1f} s\n")
    print("| backend | protocol | bare SDK pipeline | stderr lines | bedrock_otel | stderr lines |")
    print("|---|---|---|---|---|---|")
    for mode in args.modes.split(","):
        for protocol in args.protocols.split(","):
            cells = {}
            for how, command in (("sdk", [python, str(program), "--sdk-pipeline"]),
                                 ("bedrock_otel", [cli, "run", "--", python, str(program)])):
                with BrokenOtlpBackend(mode, protocol, delay=20, retry_after=30) as backend:
                    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=backend.endpoint,
                               OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
                    cells[how] = _run(command, env)
            rows.append({"mode": mode, "protocol": protocol, "sdk_s": cells["sdk"][0], "sdk_stderr": cells["sdk"][1],
                         "bedrock_otel_s": cells["bedrock_otel"][0], "bedrock_otel_stderr": cells["bedrock_otel"][1]})
            print(f"| {mode} | {protocol} | {cells['sdk'][0]:.1f} s | {cells['sdk'][1]} | "
                  f"{cells['bedrock_otel'][0]:.1f} s | {cells['bedrock_otel'][1]} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"bare_s": bare, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
