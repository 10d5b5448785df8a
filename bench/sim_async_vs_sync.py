"""In-orbit federation: async buffered rounds (FedBuff) vs sync rounds with deadlines, same sky.

One constellation (Walker 6/3, 550 km, 97.6° sun-synchronous) and one schedule (contacts with
Svalbard and Troll computed from the orbits), the same non-IID MNIST split (Dirichlet α = 0.5) and
the same satellites' on-board training. Both modes run side by side on one broker and one
simulated clock: satellites are separate processes, online only in their contact windows. The
figure of merit is the simulated time until the global model reaches the target test accuracy.

    python bench/sim_async_vs_sync.py                 # 12 simulated hours at 600x (~75 s wall)
    python bench/sim_async_vs_sync.py --hours 8 --target 0.86 --seeds 0 1
Writes bench/results/sim_async_vs_sync.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "sim_async_vs_sync.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=12.0)
    p.add_argument("--speedup", type=float, default=600.0)
    p.add_argument("--satellites", type=int, default=6)
    p.add_argument("--planes", type=int, default=3)
    p.add_argument("--target", type=float, default=0.86)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--broker", default=None, help="MQTT URL (default: embedded broker)")
    args = p.parse_args()

    from rich.console import Console
    from rich.table import Table

    from edgefl.sim.simulate import SimConfig, simulate

    rows = []
    for seed in args.seeds:
        cfg = SimConfig(
            satellites=args.satellites,
            planes=args.planes,
            duration_s=args.hours * 3600.0,
            speedup=args.speedup,
            target_accuracy=args.target,
            broker_url=args.broker,
            seed=seed,
        )
        with tempfile.TemporaryDirectory(prefix="edgefl-bench-sim-") as tmp:
            t0 = time.time()
            doc = simulate(cfg, tmp)
            wall = time.time() - t0
            schedule = json.loads((Path(tmp) / "sim" / "schedule.json").read_text())
        for mode, run in doc["runs"].items():
            rows.append(
                {
                    "seed": seed,
                    "mode": mode,
                    "aggregation": run["label"],
                    "hours_to_target": None
                    if run["time_to_target_s"] is None
                    else run["time_to_target_s"] / 3600.0,
                    "model_versions": run["versions"],
                    "updates_sent": run["updates_sent"],
                    "final_accuracy": run["final_accuracy"],
                    "best_accuracy": run["best_accuracy"],
                    "bytes_up": run["bytes_up"],
                    "bytes_down": run["bytes_down"],
                    "history": [
                        {k: r[k] for k in ("version", "sim_time_s", "accuracy", "bytes_up")}
                        for r in run["history"]
                    ],
                    "wall_s": round(wall, 1),
                }
            )
    by_seed = {}
    for r in rows:
        by_seed.setdefault(r["seed"], {})[r["mode"]] = r["hours_to_target"]
    verdicts = {
        s: (m.get("async") is not None and (m.get("sync") is None or m["async"] < m["sync"]))
        for s, m in by_seed.items()
    }

    table = Table(
        title=f"in-orbit FL, {args.satellites} satellites, {args.hours:g} simulated h, "
        f"target {100 * args.target:.0f}%"
    )
    for col in ("seed", "mode", "aggregation", "h to target", "versions", "updates", "final acc", "KB up"):
        table.add_column(col)
    for r in rows:
        h = r["hours_to_target"]
        table.add_row(
            str(r["seed"]),
            r["mode"],
            r["aggregation"],
            "not reached" if h is None else f"{h:.2f}",
            str(r["model_versions"]),
            str(r["updates_sent"]),
            f"{100 * (r['final_accuracy'] or 0):.2f}%",
            f"{r['bytes_up'] / 1e3:.0f}",
        )
    Console().print(table)
    Console().print(f"async reaches the target first: {verdicts}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "sim_async_vs_sync",
                "command": "python bench/sim_async_vs_sync.py "
                + " ".join(
                    f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                    for k, v in vars(args).items()
                    if v is not None
                ),
                "constellation": {
                    "satellites": args.satellites,
                    "planes": args.planes,
                    "altitude_km": 550,
                    "inclination_deg": 97.6,
                    "stations": ["svalbard", "troll"],
                    "contacts": len(schedule["contacts"]),
                },
                "target_accuracy": args.target,
                "async_first": verdicts,
                "rows": rows,
                "machine_note": "wall time depends on machine load; simulated times use the simulated clock",
            },
            indent=1,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
