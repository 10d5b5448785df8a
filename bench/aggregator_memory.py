"""Aggregator memory: peak RSS while one round folds 2,000 updates of a 1M-parameter model,
against the model's size — the streaming fold keeps no update, so the peak must not grow with
the number of updates.

The updates go through the real AggregatorCore and StateStore (the running sum persisted every
``--commit-every`` updates, as group commit does under load, and at the close) exactly as from
MQTT, without a broker: each update arrives as a fresh payload buffer, read from one template
file with its client id rewritten in place (the bench keeps no payload of its own). The
constant is this process's peak RSS before the model exists (interpreter, numpy, the runtime);
the bar: peak <= constant + 3 x the model's float32 size.

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
    return sum(v.nbytes for v in model.values())


def aggregate(folder, commit_every):
    """The aggregator's side, in its own process: what it holds is all that is measured."""
    from edgefl.runtime import fold_kernel
    from edgefl.runtime.heap import return_freed_memory
    from edgefl.runtime.wire import decode_tensors

    return_freed_memory()  # as `aggregate` does at start (runtime.service)
    kernel = fold_kernel.prepare()
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
    result = {
        "bench": "aggregator_memory",
        "updates": args.updates,
        "parameters": args.params // 1000 * 1000 + 1000,
        "codec": args.codec,
        "update_bytes": size,
        "model_bytes_fp32": model_bytes,
        "commit_every": args.commit_every,
        **measured,
        "peak_above_constant_x_model": (peak - constant) / model_bytes,
        "bar_peak_le_constant_plus_3x_model": peak <= constant + 3 * model_bytes,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("{} updates x {:,} params ({}, {:,} B each): constant {:.1f} MiB, peak {:.1f} MiB = constant "
          "+ {:.2f} x the model ({:.1f} MiB); RSS after 200/400/.../{} updates: {} MiB; bar (<= 3x): {}"
          .format(args.updates, result["parameters"], args.codec, size, constant / MIB, peak / MIB,
                  result["peak_above_constant_x_model"], model_bytes / MIB, args.updates,
                  ", ".join("{:.1f}".format(r / MIB) for _, r in measured["rss_after_updates"]),
                  result["bar_peak_le_constant_plus_3x_model"]))
    print("wrote {}".format(out))


if __name__ == "__main__":
    main()
