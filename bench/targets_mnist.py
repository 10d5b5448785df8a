"""Issue 14's MNIST bar, from the exact commands a user types (the installed console script):

    edgefl train --model resnet20 --data mnist --epochs 4 --seed 0 --out CK
    edgefl compress picpq CK --seed 0 --target-bops 50 --json     # >= 50x BOPs, <= 0.5 points lost
    edgefl compress picpq CK --seed 0 --json                      # the defaults: the same bar
    edgefl compress ghost CK --seed 0 --target-bops 40 --json     # >= 40x BOPs, <= 1 point lost

Runs them in a work folder (so the default --out folders land there), keeps every JSON and writes
bench/results/targets_mnist.json with the figures and the bar. Not a test: it takes a while.

    nice python bench/targets_mnist.py [--work DIR] [--seed 0]
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

RESULTS = Path(__file__).resolve().parent / "results" / "targets_mnist.json"
EDGEFL = str(Path(sys.executable).with_name("edgefl"))
BAR = {
    "picpq --target-bops 50": (50, 0.5),
    "picpq (defaults)": (50, 0.5),
    "ghost --target-bops 40": (40, 1.0),
}


def run(cwd: Path, *argv) -> tuple[dict | None, float, str]:
    shown = " ".join(["edgefl", *argv])
    print("$", shown, file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run([EDGEFL, *argv], cwd=cwd, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`{shown}` failed with exit {done.returncode}")
    return (json.loads(done.stdout) if "--json" in argv else None), time.perf_counter() - start, shown


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None, help="Work folder (default: a temporary one).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="targets-mnist-"))
    work.mkdir(parents=True, exist_ok=True)
    seed = str(args.seed)
    rows = {}
    if not (work / "CK" / "config.json").exists():
        run(
            work,
            "train",
            "--model",
            "resnet20",
            "--data",
            "mnist",
            "--epochs",
            "4",
            "--seed",
            seed,
            "--out",
            "CK",
        )
    commands = {
        "picpq --target-bops 50": (
            "compress",
            "picpq",
            "CK",
            "--seed",
            seed,
            "--target-bops",
            "50",
            "--json",
        ),
        "picpq (defaults)": ("compress", "picpq", "CK", "--seed", seed, "--json"),
        "ghost --target-bops 40": (
            "compress",
            "ghost",
            "CK",
            "--seed",
            seed,
            "--target-bops",
            "40",
            "--json",
        ),
    }
    for name, cmd in commands.items():
        doc, seconds, shown = run(work, *cmd)
        t = doc["totals"]
        ratio, drop = BAR[name]
        rows[name] = {
            "command": shown,
            "bops_ratio": doc["bops_ratio"],
            "size_ratio": doc["size_ratio"],
            "accuracy_before": doc["accuracy_before"],
            "accuracy_after": doc["accuracy_after"],
            "drop_points": t["accuracy_drop_points"],
            "target": doc["target"],
            "seconds": round(seconds, 1),
            "bar": {
                "bops_ratio_at_least": ratio,
                "drop_at_most": drop,
                "met": doc["bops_ratio"] >= ratio and t["accuracy_drop_points"] <= drop,
            },
        }
        print(
            f"{name}: {doc['bops_ratio']:.1f}x BOPs, {t['accuracy_drop_points']:.2f} points lost "
            f"({'PASS' if rows[name]['bar']['met'] else 'FAIL'})",
            flush=True,
        )
    out = {
        "benchmark": "targets_mnist",
        "command": "python bench/targets_mnist.py",
        "seed": args.seed,
        "float": f"edgefl train --model resnet20 --data mnist --epochs 4 --seed {seed} --out CK",
        "rows": rows,
        "bar_met": all(r["bar"]["met"] for r in rows.values()),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
