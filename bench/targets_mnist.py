"""Issue 14's MNIST bar, from the exact commands a user types (the installed console script):

    edgefl train --model resnet20 --data mnist --epochs 4 --seed 0 --out CK
    edgefl compress picpq CK --seed 0 --json                      # the defaults: >= 50x BOPs, <= 0.5 points
    edgefl compress picpq CK --seed 0 --target-bops 50 --json     # >= 50x BOPs, <= 0.5 points lost
    edgefl compress ghost CK --seed 0 --target-bops 40 --json     # >= 40x BOPs, <= 1 point lost

Each compression gets its own ``--out`` (the two PIC-PQ runs would otherwise share runs/picpq). Then BOPs
are not latency (item 3): the float checkpoint (fp32) and each compressed one (int8 Q/DQ) are exported for
the Jetson TX2 profile and timed by onnxruntime on this CPU, one thread, batch 1 and 32
(``bench/bundle_latency.py``), with each bundle's size on disk and whether the CPU has VNNI.

Writes bench/results/targets_mnist.json. Not a test: it takes a while (about 30 min on 2 cores).

    nice python bench/targets_mnist.py [--work DIR] [--seed 0] [--no-latency]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bundle_latency, next to this file

from bundle_latency import EDGEFL, bundle_latency, edgefl_json, vnni  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "targets_mnist.json"
ROWS = {  # name: (method, options, out, bar: (BOPs ratio at least, points lost at most))
    "picpq (defaults)": ("picpq", [], "pq-defaults", (50, 0.5)),
    "picpq --target-bops 50": ("picpq", ["--target-bops", "50"], "pq-target50", (50, 0.5)),
    "ghost --target-bops 40": ("ghost", ["--target-bops", "40"], "ghost-target40", (40, 1.0)),
}


def train(work: Path, seed: str) -> str:
    """`edgefl train ...` exactly as the issue writes it (no --json), in ``work``; its command line."""
    argv = ["train", "--model", "resnet20", "--data", "mnist", "--epochs", "4", "--seed", seed, "--out", "CK"]
    shown = " ".join(["edgefl", *argv])
    if not (work / "CK" / "config.json").exists():
        print("$", shown, file=sys.stderr, flush=True)
        if subprocess.run([EDGEFL, *argv], cwd=work, stdout=subprocess.DEVNULL, check=False).returncode:
            raise SystemExit(f"`{shown}` failed")
    return shown


def row(work: Path, seed: str, method: str, options: list, out: str, bar: tuple) -> dict:
    argv = ["compress", method, "CK", "--seed", seed, *options, "--json", "--out", out]
    start = time.perf_counter()
    doc = edgefl_json(*argv, cwd=work)
    drop = doc["totals"]["accuracy_drop_points"]
    return {
        "command": " ".join(["edgefl", *argv]),
        **{k: doc[k] for k in ("bops_ratio", "size_ratio", "accuracy_before", "accuracy_after", "target")},
        "drop_points": drop,
        "checkpoint": str(work / out),
        "seconds": round(time.perf_counter() - start, 1),
        "bar": {"bops_ratio_at_least": bar[0], "drop_at_most": bar[1],
                "met": doc["bops_ratio"] >= bar[0] and drop <= bar[1]},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None,
                    help="Work folder (default: a temporary one); what it already holds is reused.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-latency", dest="latency", action="store_false", help="Skip export and timing.")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="targets-mnist-"))
    work.mkdir(parents=True, exist_ok=True)
    seed = str(args.seed)
    out = {
        "benchmark": "targets_mnist",
        "command": "nice python bench/targets_mnist.py",
        "seed": args.seed,
        "float": train(work, seed),
        "rows": {},
        "cpus": os.cpu_count(),
    }
    for name, (method, options, folder, bar) in ROWS.items():
        done = work / f"{folder}.json"  # resumable: a row already measured in this work folder is kept
        if not done.exists():
            done.write_text(json.dumps(row(work, seed, method, options, folder, bar), indent=1))
        r = out["rows"][name] = json.loads(done.read_text())
        print(f"{name}: {r['bops_ratio']:.1f}x BOPs, {r['drop_points']:.2f} points lost "
              f"({'PASS' if r['bar']['met'] else 'FAIL'})", flush=True)
    out["bar_met"] = all(r["bar"]["met"] for r in out["rows"].values())
    if args.latency:
        import onnxruntime

        bundles = {"float (fp32)": (work / "CK", "fp32")}
        for name, r in out["rows"].items():
            bundles[f"{name} (int8 Q/DQ)"] = (Path(r["checkpoint"]), "int8")
        out["latency"] = {
            "onnxruntime": onnxruntime.__version__,
            "cpu_vnni": vnni(),
            "bundles": {
                name: bundle_latency(ck, work / f"{ck.name}-{precision}-bundle", precision)
                for name, (ck, precision) in bundles.items()
            },
        }
    out["load_average_1m"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
