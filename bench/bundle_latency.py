"""A checkpoint's bundle for the Jetson TX2 profile, timed on this CPU: shared by the issue-14 benches.

`edgefl export CK --profile jetson-tx2 --precision P --dynamic-batch --batch-size 32`, then `edgefl bench
BUNDLE --backend onnxruntime --threads 1` at batch 1 and 32; the bundle's size on disk. ``P`` is fp32 for
the float model and int8 (Q/DQ) for a compressed one. Through the installed console script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EDGEFL = str(Path(sys.executable).with_name("edgefl"))
BATCHES = ((1, 300), (32, 40))  # (batch, timed iterations)


def edgefl_json(*argv, cwd=None) -> dict:
    """The console script's --json document; exits with the command line when it fails."""
    shown = " ".join(["edgefl", *map(str, argv)])
    print("$", shown, file=sys.stderr, flush=True)
    done = subprocess.run([EDGEFL, *map(str, argv)], cwd=cwd, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`{shown}` failed with exit {done.returncode}")
    return json.loads(done.stdout)


def vnni() -> list[str]:
    """The VNNI flags this CPU advertises (avx512_vnni, avx_vnni); empty on an x86 without VNNI."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return sorted({f for f in flags if f in ("avx512_vnni", "avx_vnni")})


def bundle_latency(checkpoint: Path, bundle: Path, precision: str) -> dict:
    """Export ``checkpoint`` to ``bundle`` (kept when it exists) at ``precision`` and time it, one thread."""
    if not (bundle / "manifest.json").exists():
        edgefl_json(
            "export", checkpoint, "--profile", "jetson-tx2", "--precision", precision, "--out", bundle,
            "--dynamic-batch", "--batch-size", 32, "--json",
        )
    timing = {}
    for batch, iterations in BATCHES:
        r = edgefl_json(
            "bench", bundle, "--backend", "onnxruntime", "--batch-size", batch, "--threads", 1,
            "--iterations", iterations, "--warmup", 20, "--json",
        )
        timing[f"b{batch}_p50_ms"] = r["p50_ms"]
        timing[f"b{batch}_mean_ms"] = r["mean_ms"]
    return {
        "bundle": str(bundle),
        "precision": precision,
        "bundle_bytes": sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file()),
        "onnx_bytes": sum(f.stat().st_size for f in bundle.glob("*.onnx")),
        "threads": 1,
        "load_average_1m": os.getloadavg()[0],
        **timing,
    }
