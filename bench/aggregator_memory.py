"""Aggregator memory: peak RSS while one round folds 2,000 updates of a 1M-parameter model,
against the model's size — the streaming fold keeps no update, so the peak must not grow with
the number of updates.

The updates go through the real AggregatorCore and StateStore (the running sum persisted every
``--commit-every`` updates, as group commit does under load, and at the close) exactly as from
MQTT, without a broker: each update arrives as a fresh payload buffer, read from one template
file with its client id rewritten in place (the bench keeps no payload of its own). The
aggregator process starts as ``aggregate`` does (``heap.return_freed_memory``, the fold kernel
built) and runs one 10-parameter round first, so every module an update needs is loaded.

Stated constant: that process's peak RSS before the model exists (interpreter, numpy, the
warmed runtime) plus BUFFERS_MIB (block buffers) plus PER_CLIENT bytes for each contributor (the
record a round keeps of it — client id, example count, metrics — to refuse a duplicate and to
report who contributed: the only part that grows with the number of clients, never with the
model; the slope is measured between updates and printed). The bar:
peak <= constant + 3 x the model's float32 size. What the 3x is: the exact int64 running sum
(2x) and the update in hand (1x for raw float32 updates); the model itself is mapped from the
round's persisted models file between closes (``aggregator_state.map_models``).

    nice python bench/aggregator_memory.py [--updates 2000] [--codec none|fedfq]
Writes bench/results/aggregator_memory[_CODEC].json.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import OrderedDict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore  # noqa: E402
from edgefl.runtime.state_store import StateStore  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 1 << 20
BUFFERS_MIB = 1  # block buffers, the open round's bookkeeping (see the docstring)
PER_CLIENT = 2048  # bytes: a contributor's record (id, example count, metrics) with the allocator's overhead


def rss():
    """(VmRSS, VmHWM) of this process in bytes."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out["VmRSS"], out["VmHWM"]


def prepare(folder, params, codec, updates):
    """The model, the aggregator's config and one update as an agent sends it (client id
    "c0000"), written to ``folder`` for the aggregator process."""
    from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
    from edgefl.runtime.wire import encode_tensors

    rng = np.random.RandomState(0)
    rows, cols = 1000, params // 1000
    model = OrderedDict([("fc.weight", (rng.randn(rows, cols) * 0.01).astype(np.float32)),
                         ("fc.bias", np.zeros(rows, np.float32))])
    ids = ["c{:04d}".format(i) for i in range(updates)]
    cfg = dict(federation="bench", rounds=2, clients=ids, min_clients=updates,
               clients_per_round=updates, codec=codec, client_max_examples=dict.fromkeys(ids, 1000))
    core = AggregatorCore(AggregatorConfig(**cfg), model)
    announce = [a for a in core.start(0.0) if getattr(a, "topic", "").endswith("/round")][0]
    agent = AgentCore(AgentConfig("bench", "c0000"))
    job = agent.on_message(announce.topic, announce.payload)
    local = OrderedDict((k, v + rng.randn(*v.shape).astype(np.float32) * 1e-3)
                        for k, v in job.global_model.items())
    topic, payload = agent.on_trained(job, TrainResult(local, 500, {}))
    head = 8 + struct.unpack("<Q", payload[:8])[0]
    at = payload.index(b'"client_id":"c0000"', 8, head) + len(b'"client_id":"')
    (folder / "model.safetensors").write_bytes(encode_tensors(model))
    (folder / "update.bin").write_bytes(payload)
    (folder / "job.json").write_text(json.dumps({"config": cfg, "topic": topic[: -len("c0000")],
                                                 "at": at, "size": len(payload)}))
    prepare_warm_up(folder, codec)
    return sum(v.nbytes for v in model.values())


def warm_config(codec):
    return dict(federation="warm", rounds=1, min_clients=1, clients=["w0"], codec=codec)


def prepare_warm_up(folder, codec):
    """A 10-parameter round's update (written by this process, so the measured one never
    loads the agent's code)."""
    from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult

    core = AggregatorCore(AggregatorConfig(**warm_config(codec)),
                          OrderedDict([("w", np.zeros(10, np.float32))]))
    announce = [a for a in core.start(0.0) if getattr(a, "topic", "").endswith("/round")][0]
    agent = AgentCore(AgentConfig("warm", "w0"))
    job = agent.on_message(announce.topic, announce.payload)
    topic, payload = agent.on_trained(job, TrainResult(OrderedDict([("w", np.ones(10, np.float32))]),
                                                        5, {}))
    (folder / "warm.bin").write_bytes(payload)
    (folder / "warm.json").write_text(json.dumps({"topic": topic, "codec": codec}))


def warm_up(folder):
    """The 10-parameter round through the core and the store: every module and cache an update
    touches is loaded before the constant is measured."""
    job = json.loads((folder / "warm.json").read_text())
    core = AggregatorCore(AggregatorConfig(**warm_config(job["codec"])),
                          OrderedDict([("w", np.zeros(10, np.float32))]))
    store = StateStore(str(folder / "warm" / "state"))
    core.start(0.0)
    store.save(core)
    core.on_message(job["topic"], (folder / "warm.bin").read_bytes(), 1.0)
    store.save(core)
    assert core.done, core.log[-3:]


def aggregate(folder, commit_every):
    """The aggregator's side, in its own process: what it holds is all that is measured."""
    from edgefl.runtime import fold_kernel
    from edgefl.runtime.heap import return_freed_memory
    from edgefl.runtime.wire import decode_tensors

    return_freed_memory()  # as `aggregate` does at start (runtime.service)
    kernel = fold_kernel.prepare()
    warm_up(folder)
    constant = rss()[1]  # interpreter, numpy, the runtime: before the model exists
    job = json.loads((folder / "job.json").read_text())
    model, _ = decode_tensors((folder / "model.safetensors").read_bytes())
    core = AggregatorCore(AggregatorConfig(**job["config"]), model)
    del model
    core.start(0.0)
    store = StateStore(str(folder / "agg.state"))
    store.save(core)
    ids, at, size, samples = job["config"]["clients"], job["at"], job["size"], []
    t0 = time.perf_counter()
    with open(str(folder / "update.bin"), "rb") as f:
        for i, cid in enumerate(ids):
            buf = bytearray(size)  # what the transport hands over: one fresh payload
            f.seek(0)
            f.readinto(buf)
            buf[at:at + len(cid)] = cid.encode()
            core.on_message(job["topic"] + cid, buf, 1.0)
            del buf
            if (i + 1) % commit_every == 0 or i + 1 == len(ids):
                store.save(core)
            if (i + 1) % 200 == 0:
                samples.append([i + 1, rss()[0]])
    wall = time.perf_counter() - t0
    assert core.round == 2 and core.history[0]["clients"] == ids, core.history[-1:]
    return {"constant_bytes": constant, "peak_rss_bytes": rss()[1], "rss_after_updates": samples,
            "wall_s": wall, "fold_kernel": kernel}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument("--params", type=int, default=1_000_000)
    p.add_argument("--codec", default="none")
    p.add_argument("--commit-every", type=int, default=50)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--aggregator", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.aggregator is not None:  # the measured process
        print(json.dumps(aggregate(args.aggregator, args.commit_every)))
        return
    out = args.out or RESULTS / ("aggregator_memory.json" if args.codec == "none"
                                 else "aggregator_memory_{}.json".format(args.codec))
    with tempfile.TemporaryDirectory(prefix="edgefl-aggmem-") as tmp:
        model_bytes = prepare(Path(tmp), args.params, args.codec, args.updates)
        size = (Path(tmp) / "update.bin").stat().st_size
        run = subprocess.run([sys.executable, __file__, "--aggregator", tmp, "--commit-every",
                              str(args.commit_every)], check=True, capture_output=True, text=True)
        measured = json.loads(run.stdout.strip().splitlines()[-1])
    constant, peak = measured["constant_bytes"], measured["peak_rss_bytes"]
    allowance = BUFFERS_MIB * MIB + PER_CLIENT * args.updates
    stated = constant + allowance
    samples = measured["rss_after_updates"]  # between updates: no payload in hand
    slope = ((samples[-2][1] - samples[0][1]) / (samples[-2][0] - samples[0][0])
             if len(samples) >= 3 else None)  # the last sample is after the close
    result = {
        "bench": "aggregator_memory",
        "updates": args.updates,
        "parameters": args.params // 1000 * 1000 + 1000,
        "codec": args.codec,
        "update_bytes": size,
        "model_bytes_fp32": model_bytes,
        "commit_every": args.commit_every,
        **measured,
        "allowance_bytes": allowance,
        "allowance": "{} MiB + {} B per contributor".format(BUFFERS_MIB, PER_CLIENT),
        "stated_constant_bytes": stated,
        "rss_per_contributor_bytes": slope,
        "peak_above_runtime_x_model": (peak - constant) / model_bytes,
        "peak_above_stated_constant_x_model": (peak - stated) / model_bytes,
        "bar_peak_le_constant_plus_3x_model": peak <= stated + 3 * model_bytes,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("{} updates x {:,} params ({}, {:,} B each, fold {}): runtime {:.1f} MiB, peak {:.1f} MiB "
          "= runtime + {:.2f} x the model ({:.1f} MiB) = stated constant (runtime + {:.1f} MiB) + {:.2f} x "
          "the model; RSS between updates after 200/400/.../{}: {} MiB ({} per contributor); "
          "bar (<= constant + 3x): {}"
          .format(args.updates, result["parameters"], args.codec, size, measured["fold_kernel"],
                  constant / MIB, peak / MIB, result["peak_above_runtime_x_model"],
                  model_bytes / MIB, allowance / MIB, result["peak_above_stated_constant_x_model"],
                  args.updates, ", ".join("{:.1f}".format(r / MIB) for _, r in samples),
                  "n/a" if slope is None else "{:.0f} B".format(slope),
                  result["bar_peak_le_constant_plus_3x_model"]))
    print("wrote {}".format(out))


if __name__ == "__main__":
    main()
