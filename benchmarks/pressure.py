"""The quota simulator's comparison (`bedrock_otel.testing.quota_sim`): N callers offer about 3x a quota on the
loopback server for `--cut` seconds, then the quota comes back; the same workload under each configuration.

    python benchmarks/pressure.py [--cut 60] [--recovery 20] [--quota 20] [--callers 48] [--tokens] [--json F]
    python benchmarks/pressure.py --overhead      # what pressure mode adds to an attempt with no throttle

`--tokens`: the quota is tokens a minute (each request costs its max_tokens) instead of requests a second.
Prints one Markdown table over every caller, and one over the boto3 callers (where botocore's adaptive mode is
the anchor).
"""

from __future__ import annotations

import argparse
import json
import timeit
from pathlib import Path

import anthropic

from bedrock_otel.testing import quota_sim


def overhead(number: int = 200_000) -> None:
    """Pressure mode's work on an attempt of a key that saw no throttle: its turn before the send (`pace`) and the
    success after it, in ns per attempt (best of 5, the loop's own cost subtracted)."""
    import bedrock_otel
    from bedrock_otel import runtime as rt
    from bedrock_otel.families.sdk import SDK
    from bedrock_otel.observe.labels import CallLabels
    from bedrock_otel.observe.observer import CallContext

    bedrock_otel.instrument(pressure=True, metrics="none", traces=False)
    runtime = rt.ACTIVE
    assert runtime is not None
    ctx = CallContext(SDK, CallLabels("anthropic", "first_party", "claude-opus-4-7"))

    def attempt() -> None:
        runtime.pace(ctx, None)
        runtime._succeeded(ctx)

    def empty() -> None:
        pass

    cost = min(timeit.repeat(attempt, number=number, repeat=5)) - min(timeit.repeat(empty, number=number, repeat=5))
    bedrock_otel.uninstrument()
    print(f"pressure mode, no throttle: {cost / number * 1e9:.0f} ns per attempt (turn, send clock, success)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cut", type=float, default=60.0, help="seconds the quota is cut (default 60)")
    parser.add_argument("--recovery", type=float, default=20.0, help="seconds after it is restored (default 20)")
    parser.add_argument("--quota", type=float, default=20.0, help="requests a second while cut (default 20)")
    parser.add_argument("--callers", type=int, default=48, help="concurrent callers (default 48)")
    parser.add_argument("--tokens", action="store_true", help="a tokens-a-minute quota instead of requests a second")
    parser.add_argument("--configs", default=",".join(c.name for c in quota_sim.CONFIGS),
                        help="comma list of configurations (default: all)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--overhead", action="store_true", help="only measure the cost with no throttle")
    args = parser.parse_args()
    if args.overhead:
        overhead()
        return
    chosen = [c for c in quota_sim.CONFIGS if c.name in args.configs.split(",")]
    unit = f"{args.quota * 60 * 1000:,.0f} tokens/min" if args.tokens else f"{args.quota:g} requests/s"
    print(f"anthropic {anthropic.__version__}; quota {unit}, {args.callers} callers offering 3x for {args.cut:g} s, "
          f"then restored for {args.recovery:g} s")
    results = []
    for config in chosen:
        result = quota_sim.run(config, quota=args.quota, callers=args.callers, cut_s=args.cut,
                               recovery_s=args.recovery, per_token=args.tokens)
        results.append(result)
        print(f"  {config.name}: {len(result.calls)} calls, {result.admitted} admitted, throttled {result.throttled}",
              flush=True)
    print("\nall callers\n" + quota_sim.table(results))
    print("\nboto3 callers\n" + quota_sim.table(results, quota_sim.BOTO3_LANES))
    if args.json:
        args.json.write_text(json.dumps({r.config: {"all": r.figures(), "boto3": r.figures(quota_sim.BOTO3_LANES)}
                                         for r in results}, indent=2))


if __name__ == "__main__":
    main()
