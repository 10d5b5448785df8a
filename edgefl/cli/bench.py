"""`edgefl bench BUNDLE`: latency p50/p95/p99 and throughput of a bundle on this machine."""

from pathlib import Path

import typer

from edgefl.cli.common import console, emit_json, key_value_table


def command(
    bundle: Path = typer.Argument(..., help="Bundle directory written by `edgefl export`."),
    backend: str = typer.Option("auto", "--backend", help="auto | onnxruntime | tensorrt."),
    batch: int = typer.Option(None, "--batch", help="Batch size (dynamic-batch bundles only)."),
    iterations: int = typer.Option(200, "--iterations", help="Timed inference calls."),
    warmup: int = typer.Option(20, "--warmup", help="Untimed calls first."),
    threads: int = typer.Option(1, "--threads", help="CPU intra-op threads (onnxruntime)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
):
    """Measure inference latency percentiles and throughput of a bundle through the runtime engine."""
    from edgefl.export.bench import bench_bundle

    result = bench_bundle(bundle, backend, batch, iterations, warmup, threads)
    if as_json:
        emit_json(result)
        return
    console.print(key_value_table(f"bench {bundle} ({result['engine']}, batch {result['batch']})", result))
