"""Aggregator throughput: decode, validate and FedAvg 100 updates of 1M parameters, against the
memory bandwidth of this machine measured in the same run (numpy copy of a 256 MiB buffer).

The updates go through the real AggregatorCore (wire decode, every validation check, FedAvg with
float64 accumulation, new global model) exactly as from MQTT, without a broker or a state file.

    OMP_NUM_THREADS=1 python bench/aggregator_throughput.py [--updates 100] [--codec none]
Writes bench/results/aggregator_throughput.json.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections import OrderedDict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "aggregator_throughput.json"


def memory_bandwidth(mib=256, repeat=5):
    """Best copy bandwidth (bytes read + written per second) of a large numpy buffer."""
    src = np.ones(mib * (1 << 20) // 8, np.float64)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeat))
    return 2 * src.nbytes / best


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=100)
    p.add_argument("--params", type=int, default=1_000_000)
    p.add_argument("--codec", default="none")
    p.add_argument("--state", type=Path, default=None, help="persist after each update (StateStore) here")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
    from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore

    rng = np.random.RandomState(0)
    rows_, cols = 1000, args.params // 1000
    model = OrderedDict(
        [
            ("fc.weight", rng.randn(rows_, cols).astype(np.float32) * 0.01),
            ("fc.bias", np.zeros(rows_, np.float32)),
        ]
    )
    cfg = AggregatorConfig(
        "bench", rounds=1, min_clients=args.updates, clients_per_round=args.updates, codec=args.codec
    )
    core = AggregatorCore(cfg, model)
    announce = [a for a in core.start(0.0) if hasattr(a, "topic")][0]
    payloads = []
    for i in range(args.updates):  # what 100 agents would send (prepared outside the timing)
        agent = AgentCore(AgentConfig("bench", f"c{i:03d}"))
        job = agent.on_message(announce.topic, announce.payload)
        local = OrderedDict(
            (k, v + rng.randn(*v.shape).astype(np.float32) * 1e-3) for k, v in job.global_model.items()
        )
        payloads.append(agent.on_trained(job, TrainResult(local, 100 + i, {})))
    bandwidth = memory_bandwidth()
    store = None
    if args.state is not None:
        from edgefl.runtime.state_store import StateStore

        store = StateStore(str(args.state))
    start = time.perf_counter()
    t_last = start
    for topic, payload in payloads:
        t_last = time.perf_counter()
        core.on_message(topic, payload, 1.0)
        if store is not None:
            store.save(core)
    total = time.perf_counter() - start
    aggregate_s = time.perf_counter() - t_last  # the last message also runs FedAvg
    assert core.done and len(core.history[0]["clients"]) == args.updates
    wire_bytes = sum(len(p) for _, p in payloads)
    fp32_bytes = args.updates * 4 * sum(v.size for v in model.values())
    # minimum traffic: read every payload once + read each decoded update once for the sum
    result = {
        "bench": "aggregator_throughput",
        "updates": args.updates,
        "parameters": sum(v.size for v in model.values()),
        "codec": args.codec,
        "persisted_after_each_update": args.state is not None,
        "threads": 1,
        "total_s": total,
        "per_update_ms": 1e3 * (total - aggregate_s) / args.updates,
        "fedavg_close_s": aggregate_s,
        "wire_bytes": wire_bytes,
        "updates_per_s": args.updates / total,
        "payload_throughput_Bps": wire_bytes / total,
        "memory_bandwidth_Bps": bandwidth,
        "fraction_of_bandwidth": (wire_bytes + fp32_bytes) / total / bandwidth,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    t = Table(
        title=f"aggregator: {args.updates} updates × {result['parameters']:,} params ({args.codec}), one core"
    )
    t.add_column("measure")
    t.add_column("value")
    for k, v in [
        ("total (decode+validate+FedAvg)", f"{total:.2f} s"),
        ("per update", f"{result['per_update_ms']:.1f} ms"),
        ("FedAvg + new model at close", f"{aggregate_s:.2f} s"),
        ("updates/s", f"{result['updates_per_s']:.1f}"),
        ("payload throughput", f"{wire_bytes / total / 1e9:.2f} GB/s"),
        ("memory bandwidth (copy)", f"{bandwidth / 1e9:.2f} GB/s"),
        ("min. traffic / bandwidth", f"{100 * result['fraction_of_bandwidth']:.1f} %"),
    ]:
        t.add_row(k, v)
    Console(width=150).print(t)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
