"""Grafana dashboards and Prometheus/Grafana alert rules, generated from the telemetry catalogue.

`bedrock-otel dashboards [DIR]` (or `python -m bedrock_otel.monitoring [DIR]`) writes them (default: `./dashboards`);
a test proves the committed files are what this package generates, so metric and label names never drift from the code.
"""
