"""Fuzz the aggregator: thousands of malformed and hostile updates between the genuine signed
ones; prints messages tried, rejected by reason and by mutation, crashes (must be 0), and
whether the final model equals the genuine-only model bitwise.

    python bench/fuzz.py [--per-round 5000] [--rounds 2] [--seed 0]
Writes bench/results/fuzz.json. (The same mutants go through a real Mosquitto in
tests/reliability/test_fuzz.py.)
"""

import argparse
import json
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz.json"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-round", type=int, default=5000, help="mutants per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from edgefl.security.fuzz_run import run_core_fuzz

    report = run_core_fuzz(per_round=args.per_round, rounds=args.rounds, clients=args.clients, seed=args.seed)
    doc = {
        "bench": "fuzz",
        "target": "AggregatorCore.on_message (signatures required, max_norm 100, 64 KiB limit)",
        "config": vars(args) | {"out": str(args.out)},
        "python": platform.python_version(),
        **report.to_json(),
    }
    console = Console()
    by_kind = Table(title="mutants by kind → rejection reason")
    by_kind.add_column("mutation")
    by_kind.add_column("sent", justify="right")
    by_kind.add_column("rejected as")
    for kind, reasons in sorted(report.by_kind.items()):
        text = ", ".join(f"{code} {n}" for code, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        by_kind.add_row(kind, str(sum(reasons.values())), text)
    console.print(by_kind)
    by_reason = Table(title="rejected by reason")
    by_reason.add_column("reason")
    by_reason.add_column("count", justify="right")
    for code, n in sorted(report.by_reason.items()):
        by_reason.add_row(code, str(n))
    console.print(by_reason)
    totals = Table(title="fuzz totals")
    for col in (
        "tried",
        "rejected",
        "accepted mutants",
        "silent",
        "crashes",
        "genuine accepted",
        "model = genuine-only",
        "s",
    ):
        totals.add_column(col, justify="right")
    totals.add_row(
        str(report.tried),
        str(report.rejected),
        str(report.accepted_mutants),
        str(report.silent),
        str(report.crashes),
        str(report.accepted_genuine),
        str(report.model_matches_genuine_only),
        f"{report.seconds:.2f}",
    )
    console.print(totals)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    ok = report.crashes == 0 and report.accepted_mutants == 0 and report.silent == 0
    return 0 if ok and report.model_matches_genuine_only else 1


if __name__ == "__main__":
    sys.exit(main())
