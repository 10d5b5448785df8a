"""How light the head-training agent is on the Python 3.6 edge stack (numpy 1.19.5, onnxruntime 1.10).

The agent (`python3.6 -m edgefl.runtime agent --config ...`, head mode on the ResNet-20 bundle's
features) joins a federation through Mosquitto whose aggregator runs here. Measured per start:

- ``cold_start_s``: process start → its retained "online" message reaches a watcher (the agent
  publishes it after it has connected and subscribed; the broker's delivery on loopback is included);
  ``cold_start_cpu_s``: the CPU time the agent had used by then (less sensitive to a busy machine);
- ``peak_rss_mb``: the agent process's maximum resident set (``wait4`` rusage) over a start and
  ``--rounds`` local rounds.

For "beyond the model and onnxruntime's arena", two reference processes on the same interpreter:
``numpy_only`` (import numpy) and ``ort_session`` (numpy + onnxruntime, the bundle's session opened as the
agent opens it and run over the same local data in the same batches). ``model_and_arena_mb`` =
ort_session − numpy_only; ``beyond_model_and_arena_mb`` = agent − model_and_arena (interpreter, numpy,
paho, the runtime, the data and the features included). Goals (issue 17): under 100 MB, start under 1 s.

    .venv/bin/python bench/light_agent.py                 # exports a ResNet-20 bundle (random weights)
    .venv/bin/python bench/light_agent.py --bundle runs/bundle --starts 7

Writes bench/results/light_agent.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "light_agent.json"
PY36 = REPO / ".venv36" / "bin" / "python"
EDGE_PATH = REPO / ".edge36"

ORT_REFERENCE = """
import resource, sys
import numpy as np
from edgefl.runtime.config import load_npz_data
from edgefl.runtime.engine import open_engine, preprocess
from edgefl.runtime.head_trainer import features_from_engine
x, _ = load_npz_data(sys.argv[2])
engine = open_engine(sys.argv[1], "onnxruntime")
features_from_engine(engine, preprocess(x, engine.manifest.get("preprocessing")),
                     input_name=engine.manifest["inputs"][0]["name"])
"""
NUMPY_ONLY = "import numpy"
# what the agent imports before it connects (onnxruntime comes after: BundleHeadTrainer.prepare)
AGENT_IMPORTS = """
import time
t = time.perf_counter()
import numpy
n = time.perf_counter()
import paho.mqtt.client
p = time.perf_counter()
import edgefl.runtime.service, edgefl.runtime.agent, edgefl.runtime.config, edgefl.runtime.loops
import edgefl.runtime.head_trainer
e = time.perf_counter()
print(n - t, p - n, e - p)
"""


def import_seconds(env, repeats=5):
    """Median seconds to import numpy, paho-mqtt and the runtime modules in a fresh interpreter."""
    runs = [[float(v) for v in subprocess.run([str(PY36), "-c", AGENT_IMPORTS], env=env, cwd="/", check=True,
                                              capture_output=True, text=True).stdout.split()]
            for _ in range(repeats)]
    names = ("numpy", "paho", "runtime")
    return {k: round(statistics.median(r[i] for r in runs), 3) for i, k in enumerate(names)}


def resnet20_bundle(work: Path) -> Path:
    """Export an untrained ResNet-20 (seed 0) for the TX2 profile: only its size and graph matter here."""
    import torch

    from edgefl.checkpoint import save_checkpoint
    from edgefl.data import MNIST_PREPROCESSING
    from edgefl.models import build_model

    torch.manual_seed(0)
    args = {"in_channels": 1, "num_classes": 10}
    save_checkpoint(work / "r20", build_model("resnet20", **args), {
        "model": "resnet20", "model_args": args, "input_shape": [1, 28, 28], "num_classes": 10,
        "preprocessing": MNIST_PREPROCESSING, "data": "mnist"})
    edgefl = Path(sys.executable).with_name("edgefl")
    subprocess.run([str(edgefl), "export", str(work / "r20"), "--profile", "jetson-tx2", "--precision",
                    "fp32", "--out", str(work / "bundle"), "--json"], check=True, stdout=subprocess.DEVNULL)
    return work / "bundle"


def local_data(path: Path, n: int) -> Path:
    import numpy as np

    from edgefl.data import load_mnist

    d = load_mnist()
    np.savez(path, x=(d.x[:n] * 255).round().astype(np.uint8), y=d.y[:n])
    return path


def run_measured(cmd, env, on_start=None):
    """Run a process to its end under GNU time; returns (seconds, maximum RSS in MB, exit code, stderr).

    GNU time reports the peak of the command itself: a child forked from this (torch-sized) process
    would count the parent's pages it held before exec.
    """
    with tempfile.NamedTemporaryFile("r") as rss, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd], env=env, cwd="/",
                                stdout=subprocess.DEVNULL, stderr=err)
        if on_start:
            on_start(start, proc.pid)
        proc.wait()
        seconds = time.perf_counter() - start
        err.seek(0)
        kb = rss.read().strip().splitlines()[-1]
        return seconds, int(kb) / 1024.0, proc.returncode, err.read().decode()[-2000:]


def serve(broker, bundle, stop):
    """An open-ended aggregator here (any client, one update closes a round)."""
    from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore
    from edgefl.runtime.config import load_model_tensors, make_transport
    from edgefl.runtime.loops import serve_aggregator
    from edgefl.runtime.transport.paho_mqtt import MqttOptions

    cfg = AggregatorConfig("light", rounds=0, min_clients=1, deadline_s=3600, codec="int8",
                           train={"epochs": 1, "lr": 0.05, "batch_size": 32})
    transport = make_transport("aggregator-light", MqttOptions(host=broker.host, port=broker.port,
                                                               username="agg"))
    try:
        serve_aggregator(AggregatorCore(cfg, load_model_tensors(str(bundle))), transport, stop=stop.is_set,
                         poll_s=0.05)
    finally:
        transport.close()


def cpu_seconds(time_pid):
    """CPU seconds (user + system) used so far by the command GNU time (``time_pid``) runs."""
    try:
        child = Path(f"/proc/{time_pid}/task/{time_pid}/children").read_text().split()[0]
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class OnlineWatch:
    """Notes when each client's retained liveness says "online"."""

    def __init__(self, broker):
        from edgefl.runtime.config import make_transport
        from edgefl.runtime.loops import wait_connected
        from edgefl.runtime.transport.paho_mqtt import MqttOptions

        self.t = make_transport("watch-light", MqttOptions(host=broker.host, port=broker.port, username="w"))
        self.t.connect()
        self.t.subscribe("edgefl/light/online/+", 1)
        wait_connected(self.t)
        self.seen, self.cpu, self.pids, self.stop = {}, {}, {}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            for ev in self.t.poll(0.01):
                if ev.kind == "message" and ev.payload == b"online":
                    cid = ev.topic.rsplit("/", 1)[1]
                    self.seen.setdefault(cid, time.perf_counter())
                    self.cpu.setdefault(cid, cpu_seconds(self.pids.get(cid)))

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.t.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", type=Path, default=None,
                   help="a bundle (default: export an untrained ResNet-20)")
    p.add_argument("--examples", type=int, default=500, help="the agent's local examples")
    p.add_argument("--rounds", type=int, default=3, help="local rounds per start")
    p.add_argument("--starts", type=int, default=5, help="agent starts (median reported)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if not PY36.exists():
        sys.exit(f"{PY36} is missing — run `bash .ci/setup` first")

    from edgefl.broker import SystemMosquitto

    env = dict(os.environ, PYTHONPATH=str(EDGE_PATH), OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp, SystemMosquitto() as broker:
        work = Path(tmp)
        bundle = args.bundle or resnet20_bundle(work)
        data = local_data(work / "local.npz", args.examples)
        refs = {name: run_measured([str(PY36), "-c", code, str(bundle), str(data)], env)
                for name, code in (("numpy_only", NUMPY_ONLY), ("ort_session", ORT_REFERENCE))}
        for name, (_, _, rc, err) in refs.items():
            if rc:
                sys.exit(f"reference {name} failed: {err}")
        imports = import_seconds(env)
        load = os.getloadavg()[0]
        stop = threading.Event()
        server = threading.Thread(target=serve, args=(broker, bundle, stop), daemon=True)
        server.start()
        watch = OnlineWatch(broker)
        starts = []
        for i in range(args.starts):
            cid = f"tx2-{i}"
            cfg = {"federation": "light", "client_id": cid, "bundle": str(bundle), "backend": "onnxruntime",
                   "data": str(data), "max_rounds": args.rounds, "timeout_s": 300,
                   "mqtt": {"host": broker.host, "port": broker.port, "username": cid}}
            (work / f"{cid}.json").write_text(json.dumps(cfg))
            began = {}
            seconds, rss, rc, err = run_measured(
                [str(PY36), "-m", "edgefl.runtime", "agent", "--config", str(work / f"{cid}.json")], env,
                on_start=lambda t, pid: (began.setdefault("t", t), watch.pids.setdefault(cid, pid)))
            if rc:
                sys.exit(f"agent {cid} failed: {err}")
            time.sleep(0.2)
            starts.append({"client": cid, "cold_start_s": round(watch.seen[cid] - began["t"], 3),
                           "cold_start_cpu_s": watch.cpu.get(cid),
                           "peak_rss_mb": round(rss, 1), "run_s": round(seconds, 2)})
            print(f"  start {i + 1}: subscribed after {starts[-1]['cold_start_s']:.3f} s, "
                  f"peak RSS {rss:.1f} MB, {args.rounds} rounds in {seconds:.1f} s", flush=True)
        watch.close()
        stop.set()
        server.join(10)
        model_bytes = sum(f.stat().st_size for f in Path(bundle).iterdir() if f.suffix == ".onnx")
    numpy_mb, ort_mb = refs["numpy_only"][1], refs["ort_session"][1]
    agent_mb = statistics.median(s["peak_rss_mb"] for s in starts)
    result = {
        "bench": "light_agent", "python": "3.6",
        "stack": "numpy 1.19.5, onnxruntime 1.10.0, paho-mqtt 1.6.1",
        "bundle": str(args.bundle) if args.bundle else "resnet20 (untrained, exported fp32 for jetson-tx2)",
        "model_file_mb": round(model_bytes / 2**20, 2), "local_examples": args.examples,
        "rounds": args.rounds,
        "cold_start_s": statistics.median(s["cold_start_s"] for s in starts),
        "cold_start_cpu_s": statistics.median(s["cold_start_cpu_s"] or 0 for s in starts),
        "peak_rss_mb": agent_mb, "numpy_only_mb": round(numpy_mb, 1), "ort_session_mb": round(ort_mb, 1),
        "model_and_arena_mb": round(ort_mb - numpy_mb, 1),
        "beyond_model_and_arena_mb": round(agent_mb - (ort_mb - numpy_mb), 1),
        "import_s": imports, "load_average_1min": round(load, 2), "cpus": os.cpu_count(),
        "goals": {"beyond_model_and_arena_mb": 100, "cold_start_s": 1.0}, "starts": starts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for k in ("cold_start_s", "cold_start_cpu_s", "peak_rss_mb", "numpy_only_mb", "ort_session_mb",
              "model_and_arena_mb", "beyond_model_and_arena_mb", "import_s", "load_average_1min"):
        print(f"{k:28s} {result[k]}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
