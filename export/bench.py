"""`edgefl bench`: latency percentiles and throughput of a bundle through the runtime engine seam.

``latency_summary`` is pure; ``bench_bundle`` opens the engine with
``edgefl.runtime.engine.open_engine`` and times ``infer`` with ``time.perf_counter``.
"""

from __future__ import annotations

import time

import numpy as np

from edgefl.errors import EdgeflError


def latency_summary(seconds, batch: int) -> dict:
    """p50/p95/p99/mean latency in ms and throughput (samples/s) from per-call durations in seconds."""
    times = np.asarray(seconds, np.float64)
    if times.size == 0:
        raise EdgeflError("no timed iterations — pass --iterations ≥ 1")
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {
        "iterations": int(times.size),
        "batch": int(batch),
        "p50_ms": float(p50 * 1e3),
        "p95_ms": float(p95 * 1e3),
        "p99_ms": float(p99 * 1e3),
        "mean_ms": float(times.mean() * 1e3),
        "throughput_per_s": float(batch * times.size / times.sum()) if times.sum() > 0 else float("inf"),
    }


def bench_input(manifest: dict, batch: int, seed: int = 0) -> np.ndarray:
    """A random normal input of the bundle's shape; a static batch in the manifest wins over ``batch``."""
    spec = manifest["inputs"][0]
    shape = list(spec["shape"])
    if isinstance(shape[0], int):
        if batch not in (None, shape[0]):
            raise EdgeflError(
                f"this bundle has a static batch of {shape[0]}; --batch {batch} needs a bundle exported "
                f"with --batch {batch} or --dynamic-batch"
            )
        batch = shape[0]
    shape[0] = batch or 1
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def bench_bundle(
    bundle_dir,
    backend: str = "auto",
    batch: int | None = None,
    iterations: int = 200,
    warmup: int = 20,
    threads: int = 1,
) -> dict:
    """Time ``engine.infer`` on one batch, after warm-up.

    Args:
        bundle_dir: a bundle written by `edgefl export` (sha256 verified on open).
        backend: "auto", "onnxruntime" or "tensorrt" (the runtime's engine registry).
        batch: batch size for a dynamic-batch bundle (a static one uses its own).
        iterations: timed calls.
        warmup: untimed calls first.
        threads: CPU intra-op threads (onnxruntime; TensorRT ignores it).

    Returns:
        latency_summary(...) plus backend, engine class, threads, model, profile, precision.
    """
    from edgefl.runtime.engine import ENGINES, open_engine
    from edgefl.runtime.errors import EdgeRuntimeError

    if iterations < 1 or warmup < 0:
        raise EdgeflError("--iterations must be ≥ 1 and --warmup ≥ 0")
    try:
        engine = open_engine(str(bundle_dir), backend, threads=threads)
    except EdgeRuntimeError as exc:
        raise EdgeflError(str(exc)) from None
    manifest = engine.manifest
    x = bench_input(manifest, batch)
    feed = {manifest["inputs"][0]["name"]: x}
    try:
        for _ in range(warmup):
            engine.infer(feed)
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            engine.infer(feed)
            times.append(time.perf_counter() - start)
    finally:
        engine.close()
    summary = latency_summary(times, len(x))
    used = next(name for name, spec in ENGINES.items() if spec.endswith(":" + type(engine).__name__))
    summary.update(
        {
            "backend": used,
            "backend_requested": backend,
            "engine": type(engine).__name__,
            "threads": threads,
            "model": manifest.get("model"),
            "profile": (manifest.get("profile") or {}).get("name"),
            "precision": manifest.get("precision"),
            "warmup": warmup,
        }
    )
    return summary
