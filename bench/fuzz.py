"""Fuzz the aggregator: thousands of malformed and hostile updates between the genuine signed
ones (type confusion in every field, other scripts' numerals, zero-sized huge shapes, metrics of
every type, retained poison, chunked poison, chunk floods, ...); prints messages tried, rejected
by reason and by mutation, chunk floods dropped, retained messages ignored after a restart,
crashes and internal errors (must be 0), and whether the final model equals the genuine-only
model bitwise.

    python bench/fuzz.py [--per-round 5000] [--rounds 2] [--seed 0] [--live] [--agent]
Writes bench/results/fuzz.json. ``--live`` also runs a real aggregator process
(``python -m edgefl.runtime aggregate``) behind a Mosquitto it starts on a free loopback port,
kills it with SIGKILL between the rounds and starts it again, and records its resident memory
(RSS) all along: a "live" section with peak and growth. ``--agent`` fuzzes a real agent process
(``python -m edgefl.runtime agent``, head mode on the tests' tiny bundle, signed announcements)
the same way with malformed announcements and statuses (``edgefl.security.fuzz_announce``):
an "agent" section with the answers by mutation class, internal errors (must be 0) and RSS.
"""

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz.json"
BUNDLE = Path(__file__).resolve().parent.parent / "tests" / "runtime" / "data" / "tiny_bundle"


@contextlib.contextmanager
def loopback_mosquitto():
    """A throwaway Mosquitto on 127.0.0.1:<free port>; yields the mqtt options."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="edgefl-fuzz-")
    conf = Path(folder) / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "max_queued_messages 100000"]
    conf.write_text("\n".join(lines + (["user root"] if os.geteuid() == 0 else [])) + "\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield {"host": "127.0.0.1", "port": port, "keepalive": 5}
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


TOTALS = [
    ("tried", "tried"),
    ("rejected", "rejected"),
    ("dropped floods", "dropped"),
    ("retained ignored", "retained_ignored"),
    ("accepted mutants", "accepted_mutants"),
    ("silent", "silent"),
    ("internal", "internal"),
    ("crashes", "crashes"),
    ("genuine ok", "accepted_genuine"),
    ("model = genuine", "model_matches_genuine_only"),
]


def _totals_row(table, name, report):
    table.add_row(name, *[str(getattr(report, attr)) for _, attr in TOTALS], f"{report.seconds:.2f}")


def _agent_table(console, agent):
    from rich.table import Table

    table = Table(title="agent fuzz: mutants by kind → answer")
    for col in ("mutation", "sent", "answered as"):
        table.add_column(col)
    for kind, answers in sorted(agent.by_kind.items()):
        text = ", ".join(f"{code} {n}" for code, n in sorted(answers.items(), key=lambda kv: -kv[1])
                         if code != "sent")
        table.add_row(kind, str(answers.get("sent", 0)), text or "(not traced: no crash, no internal)")
    console.print(table)
    console.print(
        f"agent: {agent.tried} mutants, traced {agent.traced}, untraced {agent.untraced}, internal "
        f"{agent.internal}, training failed {agent.training_failed}, rounds {agent.rounds_contributed}, "
        f"final model = aggregator's {agent.final_model_matches}, exit {agent.exit_code}, RSS peak "
        f"{agent.extra['rss_mib']['peak']} MiB, {agent.seconds:.1f} s"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-round", type=int, default=5000, help="mutants per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--live", action="store_true", help="also fuzz through a loopback Mosquitto")
    p.add_argument("--live-per-round", type=int, default=2500)
    p.add_argument("--flood-mib", type=float, default=100.0,
                   help="MiB of chunks under one message id sent to the live aggregator")
    p.add_argument("--agent", action="store_true", help="also fuzz a real agent process (Mosquitto)")
    p.add_argument("--agent-per-round", type=int, default=2000, help="announcements/statuses per round")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from edgefl.security.fuzz_live import run_live_fuzz
    from edgefl.security.fuzz_run import run_core_fuzz

    report = run_core_fuzz(per_round=args.per_round, rounds=args.rounds, clients=args.clients, seed=args.seed)
    live = None
    if args.live:
        with loopback_mosquitto() as mqtt:
            live = run_live_fuzz(mqtt, per_round=args.live_per_round, rounds=args.rounds, seed=args.seed,
                                 flood_mib=args.flood_mib)
    agent = None
    if args.agent:
        from edgefl.security.fuzz_agent import run_agent_fuzz

        with loopback_mosquitto() as mqtt:
            agent = run_agent_fuzz(mqtt, str(BUNDLE), per_round=args.agent_per_round, rounds=args.rounds,
                                   seed=args.seed)
    doc = {
        "bench": "fuzz",
        "target": "AggregatorCore.on_message through the in-memory broker and chunking layer "
        "(signatures required, max_norm 100, 64 KiB limit)",
        "config": vars(args) | {"out": os.path.relpath(args.out, Path(__file__).resolve().parent.parent)},
        "python": platform.python_version(),
        **report.to_json(),
    }
    if live is not None:
        doc["live"] = {
            "target": "python -m edgefl.runtime aggregate behind Mosquitto (loopback), kill -9 and "
            "restart between rounds",
            **live.to_json(),
        }
    if agent is not None:
        doc["agent"] = {
            "target": "python -m edgefl.runtime agent (head mode, signed announcements) behind "
            "Mosquitto (loopback); the fuzzer plays its aggregator",
            **agent.to_json(),
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
    for col in ["run"] + [name for name, _ in TOTALS] + ["s"]:
        totals.add_column(col, justify="right")
    _totals_row(totals, "core", report)
    if live is not None:
        _totals_row(totals, "live (Mosquitto)", live)
    console.print(totals)
    if live is not None:
        rss = live.extra["rss_mib"]
        console.print(
            f"aggregator RSS (MiB): before fuzzing {rss['before_fuzz']}, peak {rss['peak']}, "
            f"growth {rss['growth']} under {live.extra['chunk_flood_mib']} MiB of chunk floods "
            f"and {live.tried} mutants; exit code {live.extra['exit_code']}"
        )
    if agent is not None:
        _agent_table(console, agent)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    runs = [report] + [r for r in (live, agent) if r is not None]
    ok = all(r.ok for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
