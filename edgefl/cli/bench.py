"""`edgefl bench BUNDLE`: latency p50/p95/p99 and throughput of a bundle on this machine."""

from pathlib import Path

from edgefl.cli import options
from edgefl.cli.common import console, emit_json, key_value_table
from edgefl.runtime.engine import ENGINES

BACKENDS = ("auto", *ENGINES)


def command(
    bundle: Path = options.existing_argument("dir", "Bundle directory written by `edgefl export`.",
                                             metavar="BUNDLE"),
    backend: str = options.choice("auto", BACKENDS, "backend", "--backend",
                                  help="Inference backend (auto: TensorRT where present, else onnxruntime)."),
    batch_size: int = options.integer(None, "--batch-size", low=1,
                                      help="Batch size (dynamic-batch bundles)."),
    iterations: int = options.integer(200, "--iterations", low=1, high=1_000_000,
                                      help="Timed inference calls."),
    warmup: int = options.integer(20, "--warmup", low=0, high=1_000_000, help="Untimed calls first."),
    threads: int = options.integer(1, "--threads", low=1, high=256,
                                   help="CPU intra-op threads (onnxruntime)."),
    as_json: bool = options.as_json("the figures"),
):
    """Measure inference latency percentiles and throughput of a bundle through the runtime engine."""
    from edgefl.export.bench import bench_bundle

    result = bench_bundle(bundle, backend, batch_size, iterations, warmup, threads)
    if as_json:
        emit_json(result)
        return
    console.print(key_value_table(f"bench {bundle} ({result['backend']}, batch {result['batch']})", result))
