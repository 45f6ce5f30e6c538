"""Per-stream observation: classification of wire events and the per-stream observer (the hot path)."""
