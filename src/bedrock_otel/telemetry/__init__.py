"""The telemetry catalogue and the recorders that turn per-stream records into metrics and spans."""
