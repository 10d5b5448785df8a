"""edgefl and Flower side by side on one task, each client in its own process, real transports on loopback.

The task (issue 17): MNIST's shipped 10,000 images, `default_rng(0).permutation`, the first 8,000 to
train, the last 2,000 held out; a seeded Dirichlet(0.5) partition over 10 clients written by `edgefl data
partition` (client sizes 901, 505, 639, 1323, 1169, 428, 994, 807, 466, 768 — checked); the 20,490-
parameter CNN of `bench/peer_flower_app/peer_flower_app/cnn.py`, the same initial weights on both sides;
20 rounds of FedAvg over all clients, 1 local epoch, batch 32, SGD lr 0.05 momentum 0.9; central
evaluation on the 2,000 held-out images after every round.

- edgefl: Mosquitto, `edgefl aggregate` (central evaluation with --eval-data, per-round metrics) and ten
  `edgefl agent` processes (--partition-file, the CNN named by a model reference in the checkpoint).
- Flower 1.41.0 (its own venv, never an edgefl dependency): the Deployment Runtime — `flower-superlink`,
  ten `flower-supernode`s (each starts a ClientApp process per round), `flwr run` of the Flower App in
  `bench/peer_flower_app` (FedAvg with evaluate_fn).

Measured the same way for both: bytes each way on the clients' links (a counting TCP relay between the
clients and the broker / SuperLink: framing, setup and heartbeats included), per round; the median round
time; peak RSS of one client's process tree and of the server side (aggregator + broker; SuperLink and
the processes it starts); final and best central accuracy.

Set up Flower's venv once (git-ignored):

    python3 -m venv bench/.venv-flower
    bench/.venv-flower/bin/pip install flwr==1.41.0 torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu

Then (about 20-40 minutes on 2 cores):

    .venv/bin/python bench/peer_flower.py
    .venv/bin/python bench/peer_flower.py --only edgefl --uplink-option rate=0.02
    .venv/bin/python bench/peer_flower.py --only edgefl --add --bar-vs-stored   # bar vs the stored Flower row
    .venv/bin/python bench/peer_flower.py --aggregate-args "--some-downlink-flag value"   # passed through

Writes bench/results/peer_flower.json.
"""

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # loopback_meter, next to this file

from loopback_meter import ByteRelay, RssSampler, start, stop  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
APP = HERE / "peer_flower_app"
CNN_REF = APP / "peer_flower_app" / "cnn.py"
RESULTS = HERE / "results" / "peer_flower.json"
SIZES = [901, 505, 639, 1323, 1169, 428, 994, 807, 466, 768]
# the settings the sweep in the README chose: FedFQ with the wire budget (positions counted) both ways
UPLINK = ["rate=0.03", "budget=wire", "rounding=nearest"]
DOWNLINK = ("--downlink-codec fedfq --downlink-option rate=0.018 --downlink-option budget=wire "
            "--downlink-option rounding=nearest")
TASK = {"rounds": 20, "clients": 10, "local_epochs": 1, "batch_size": 32, "lr": 0.05, "momentum": 0.9,
        "alpha": 0.5, "seed": 0, "train": 8000, "test": 2000}


def edgefl_bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def prepare(work: Path, seed: int) -> dict:
    """The shared inputs: train/test .npz, the partition file, the initial weights (both formats)."""
    import numpy as np

    from edgefl.data import load_mnist

    d = load_mnist()
    order = np.random.default_rng(seed).permutation(len(d))
    x = (d.x[:, 0] * 255).round().astype(np.uint8)
    files = {k: work / f"{k}.npz" for k in ("train", "test", "init")}
    np.savez(files["train"], x=x[order[:TASK["train"]]], y=d.y[order[:TASK["train"]]])
    np.savez(files["test"], x=x[order[TASK["train"]:]], y=d.y[order[TASK["train"]:]])
    files["parts"] = work / "parts.json"
    out = run_json([edgefl_bin("edgefl"), "data", "partition", "--data", files["train"], "--no-split",
                    "--dirichlet", TASK["alpha"], "--clients", TASK["clients"], "--seed", seed,
                    "--out", files["parts"], "--json"])
    sizes = [c["examples"] for c in out["clients"].values()]
    assert sizes == SIZES, f"the partition does not reproduce issue 17's client sizes: {sizes}"
    files["clients"] = list(out["clients"])
    files["checkpoint"], state = edgefl_checkpoint(work / "ckpt", seed)
    np.savez(files["init"], **state)  # Flower starts from the very same weights
    return files


def edgefl_checkpoint(path: Path, seed: int):
    """A checkpoint of the CNN as a user's model (the reference `cnn.py:cnn`, not a zoo name), untrained;
    returns it and its weights as numpy."""
    import torch

    from edgefl.checkpoint import save_checkpoint
    from edgefl.data import MNIST_PREPROCESSING
    from edgefl.models.reference import build_with_source

    torch.manual_seed(seed)
    model, args, source = build_with_source(f"{CNN_REF}:cnn", {"in_channels": 1, "num_classes": 10})
    save_checkpoint(path, model, {"model": f"{CNN_REF}:cnn", "model_args": args, "model_source": source,
                                  "input_shape": [1, 28, 28], "num_classes": 10,
                                  "preprocessing": MNIST_PREPROCESSING, "data": "mnist"})
    return path, {k: v.numpy() for k, v in model.state_dict().items()}


def run_json(cmd) -> dict:
    import subprocess

    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{cmd[1:3]} failed: {p.stderr[-1500:]}")
    return json.loads(p.stdout)


def wait_for(cond, timeout: float, what: str, procs=()):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise SystemExit(f"{what}: a process exited early ({dead[0].args[3:6]}, rc {dead[0].returncode})")
        time.sleep(0.5)
    raise SystemExit(f"{what}: not within {timeout:.0f}s")


def summary(rows: list, relay: dict, peaks: dict, clients: list, server: list, seconds: float) -> dict:
    """The compared figures from per-round rows (round, accuracy, round_s) and the meters (pure)."""
    rounds = len(rows)
    client_peaks = [peaks[c] for c in clients]
    return {"rounds": rounds, "final_accuracy": rows[-1]["accuracy"],
            "best_accuracy": max(r["accuracy"] for r in rows),
            "median_round_s": statistics.median(r["round_s"] for r in rows),
            "bytes_up_per_round": relay["up"] / rounds, "bytes_down_per_round": relay["down"] / rounds,
            "bytes_up_per_client_round": relay["up"] / rounds / len(clients),
            "bytes_down_per_client_round": relay["down"] / rounds / len(clients),
            "client_peak_rss_mb": max(client_peaks),
            "client_peak_rss_mb_median": statistics.median(client_peaks),
            "server_peak_rss_mb": sum(peaks[s] for s in server), "seconds": round(seconds, 1),
            "curve": [{k: r[k] for k in ("round", "accuracy", "round_s")} for r in rows]}


def aggregate_cmd(files: dict, port: int, metrics: Path, args) -> list:
    options = ("epochs=1", "lr=0.05", "batch_size=32", "momentum=0.9")
    train = [a for o in options for a in ("--train-option", o)]
    codec = [a for o in args.uplink_option for a in ("--codec-option", o)]
    return [edgefl_bin("edgefl"), "aggregate", "--model", files["checkpoint"], "--federation", "peer",
            "--broker", f"mqtt://127.0.0.1:{port}", "--rounds", args.rounds, "--min-clients", TASK["clients"],
            "--clients-per-round", TASK["clients"], "--client-ids", ",".join(files["clients"]),
            "--deadline", 3600,
            "--codec", args.uplink_codec, *codec, *train, "--eval-data", files["test"],
            "--eval-checkpoint", files["checkpoint"], "--metrics", metrics, "--timeout", 7200, "--json",
            *shlex.split(args.aggregate_args)]


def agent_cmd(files: dict, cid: str, index: int, port: int, args) -> list:
    return [edgefl_bin("edgefl"), "agent", "--client-id", cid, "--federation", "peer",
            "--broker", f"mqtt://127.0.0.1:{port}",
            "--checkpoint", files["checkpoint"], "--data", files["train"], "--no-split",
            "--partition-file", files["parts"], "--seed", 100 * args.train_seed + index, "--timeout", 7200,
            *shlex.split(args.agent_args)]


def run_edgefl(files: dict, work: Path, args) -> dict:
    from edgefl.broker import SystemMosquitto

    logs = work / "edgefl-logs"
    logs.mkdir()
    metrics = work / "edgefl_rounds.jsonl"
    procs = []
    with SystemMosquitto() as broker:
        relay, rss = ByteRelay(broker.port).start(), RssSampler().start()
        rss.watch("mosquitto", broker.proc.pid)
        began = time.time()
        try:
            agg = start(aggregate_cmd(files, broker.port, metrics, args), logs / "aggregate.log")
            procs.append(agg)
            rss.watch("aggregate", agg.pid)
            for i, cid in enumerate(files["clients"]):
                p = start(agent_cmd(files, cid, i, relay.port, args), logs / f"{cid}.log")
                procs.append(p)
                rss.watch(cid, p.pid)
            while agg.poll() is None:  # an agent that fails ends the run (the aggregator would wait)
                failed = [a for a in procs[1:] if a.poll() not in (None, 0)]
                if failed:
                    raise SystemExit(f"an edgefl agent failed (exit {failed[0].returncode}) — see {logs}")
                time.sleep(1.0)
            seconds = time.time() - began
        finally:
            stop(procs)
            peaks, totals = rss.close(), relay.totals()
            relay.close()
    if agg.returncode:
        raise SystemExit(f"edgefl aggregate failed: {(logs / 'aggregate.log').read_text()[-2000:]}")
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    out = summary(rows, totals, peaks, files["clients"], ["aggregate", "mosquitto"], seconds)
    out.update({"uplink": {"codec": args.uplink_codec, "options": args.uplink_option},
                "aggregate_args": args.aggregate_args, "relay": totals, "peaks_mb": peaks,
                "payload_bytes_up_per_round": statistics.mean(r["bytes_up"] for r in rows),
                "payload_bytes_down_per_round": statistics.mean(r["bytes_down"] for r in rows),
                "eval_s_median": statistics.median(r["eval_s"] for r in rows)})
    return out


def run_flower(files: dict, work: Path, args) -> dict:
    venv = Path(args.flower_venv).resolve()
    if not (venv / "bin" / "flwr").exists():
        raise SystemExit(f"{venv}/bin/flwr not found — create Flower's venv first (this file's docstring)")
    home, logs = work / "flwr-home", work / "flower-logs"
    home.mkdir()
    logs.mkdir()
    link = free_tcp_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\naddress = "127.0.0.1:{link}"\n'
        'insecure = true\n')
    env = dict(os.environ, FLWR_HOME=str(home), PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    rounds_out = work / "flower_rounds.jsonl"
    procs = []
    relay, rss = ByteRelay(link).start(), RssSampler().start()
    began = time.time()
    try:
        superlink = start([venv / "bin" / "flower-superlink", "--insecure", "--port", link,
                           "--disable-runtime-dependency-installation"], logs / "superlink.log", env)
        procs.append(superlink)
        rss.watch("superlink", superlink.pid)
        wait_for(lambda: "Uvicorn running" in (logs / "superlink.log").read_text(), 120, "SuperLink start",
                 procs)
        for i, cid in enumerate(files["clients"]):
            node = (f'client-id="{cid}" index={i} train="{files["train"]}" '
                    f'partition-file="{files["parts"]}"')
            p = start([venv / "bin" / "flower-supernode", "--insecure", "--superlink",
                       f"127.0.0.1:{relay.port}", "--port", free_tcp_port(), "--node-config", node],
                      logs / f"{cid}.log", env)
            procs.append(p)
            rss.watch(cid, p.pid)
        config = (f'rounds={args.rounds} clients={TASK["clients"]} seed={args.train_seed} '
                  f'init="{files["init"]}" test="{files["test"]}" rounds-out="{rounds_out}"')
        run = start([venv / "bin" / "flwr", "run", APP, "bench", "--stream", "--run-config", config],
                    logs / "flwr-run.log", env)
        procs.append(run)
        wait_for(lambda: rounds_out.exists() and len(rounds_out.read_text().splitlines()) > args.rounds,
                 args.flower_timeout, "Flower's rounds", [superlink])
        seconds = time.time() - began
    finally:
        stop(procs)
        peaks, totals = rss.close(), relay.totals()
        relay.close()
    evals = [json.loads(line) for line in rounds_out.read_text().splitlines()]
    rows = [{"round": e["round"], "accuracy": e["accuracy"], "round_s": e["start"] - prev["end"]}
            for prev, e in zip(evals, evals[1:])]
    out = summary(rows, totals, peaks, files["clients"], ["superlink"], seconds)
    out.update({"relay": totals, "peaks_mb": peaks, "flwr": "1.41.0",
                "eval_s_median": statistics.median(e["end"] - e["start"] for e in evals[1:])})
    return out


def free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bar(edgefl: dict, flower: dict) -> dict:
    """Issue 17's bar for the table, item by item (pure)."""
    up = flower["bytes_up_per_round"] / edgefl["bytes_up_per_round"]
    down = flower["bytes_down_per_round"] / edgefl["bytes_down_per_round"]
    return {
        "accuracy_within_0.3_points": 100 * (edgefl["final_accuracy"] - flower["final_accuracy"]) >= -0.3,
        "uplink_30x_fewer_bytes": up >= 30, "uplink_ratio": round(up, 1),
        "downlink_30x_fewer_bytes": down >= 30, "downlink_ratio": round(down, 1),
        "lower_median_round_time": edgefl["median_round_s"] < flower["median_round_s"],
        "lower_client_rss": edgefl["client_peak_rss_mb"] < flower["client_peak_rss_mb"],
    }


def table(rows: dict) -> str:
    """The README table (markdown): one line per run, name -> summary."""
    cols = [("final accuracy", lambda r: f"{100 * r['final_accuracy']:.2f}%"),
            ("best accuracy", lambda r: f"{100 * r['best_accuracy']:.2f}%"),
            ("bytes up / round", lambda r: f"{r['bytes_up_per_round'] / 1e3:,.1f} kB"),
            ("bytes down / round", lambda r: f"{r['bytes_down_per_round'] / 1e3:,.1f} kB"),
            ("median round", lambda r: f"{r['median_round_s']:.2f} s"),
            ("client peak RSS", lambda r: f"{r['client_peak_rss_mb']:.0f} MB"),
            ("server-side peak RSS", lambda r: f"{r['server_peak_rss_mb']:.0f} MB")]
    lines = ["| run | " + " | ".join(c for c, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f(r) for _, f in cols) + " |" for name, r in rows.items()]
    return "\n".join(lines)


def settings(args) -> str:
    """A row's name: the uplink codec and the extra aggregate arguments (the downlink)."""
    up = args.uplink_codec + (" " + " ".join(args.uplink_option) if args.uplink_option else "")
    return f"edgefl (up {up}{'; ' + args.aggregate_args if args.aggregate_args else ''})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("edgefl", "flower"), default=None)
    p.add_argument("--rounds", type=int, default=TASK["rounds"])
    p.add_argument("--train-seed", type=int, default=0,
                   help="seed of the clients' shuffling (the partition and the initial weights stay seed 0)")
    p.add_argument("--uplink-codec", default="fedfq")
    p.add_argument("--uplink-option", action="append", default=None, help="codec option key=value")
    p.add_argument("--aggregate-args", default=DOWNLINK,
                   help="extra `edgefl aggregate` arguments: the downlink, e.g. '--downlink-codec none'")
    p.add_argument("--agent-args", default="", help="extra `edgefl agent` arguments")
    p.add_argument("--flower-venv", default=str(HERE / ".venv-flower"))
    p.add_argument("--flower-timeout", type=float, default=5400)
    p.add_argument("--work", type=Path, default=None, help="keep inputs and logs here (default: a temp dir)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--add", action="store_true",
                   help="add this run's rows to --out instead of replacing it (e.g. an edgefl setting alone)")
    p.add_argument("--bar-vs-stored", action="store_true",
                   help="with --only edgefl --add: the bar for this row against the Flower row in --out "
                        "(bytes and accuracy are deterministic on both sides; round time and RSS then "
                        "compare two invocations, which the bar says)")
    args = p.parse_args(argv)
    if args.uplink_option is None:
        args.uplink_option = list(UPLINK) if args.uplink_codec == "fedfq" else []
    import tempfile

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        files = prepare(work, TASK["seed"])
        if args.only in (None, "edgefl"):
            print(f"running {settings(args)} ...", flush=True)
            rows[settings(args)] = run_edgefl(files, work, args)
        if args.only in (None, "flower"):
            print("running flower ...", flush=True)
            rows["flower 1.41.0"] = run_flower(files, work, args)
    result = json.loads(args.out.read_text()) if args.add and args.out.exists() else {}
    result.update({"bench": "peer_flower", "task": {**TASK, "rounds": args.rounds, "client_sizes": SIZES,
                                                    "parameters": 20490}})
    suffix = f" [train seed {args.train_seed}]" if args.train_seed else ""
    rows = {name + suffix: row for name, row in rows.items()}
    stamp = {"cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
             "time": time.strftime("%Y-%m-%d %H:%M")}
    for name, row in rows.items():
        row["machine"] = stamp
        result.setdefault("rows", {})[name] = row
    if args.only is None:  # the bar compares runs made on the same machine in the same invocation
        edge = next(n for n in rows if n.startswith("edgefl"))
        result["bar"] = {"edgefl": edge, "flower": "flower 1.41.0", **bar(rows[edge], rows["flower 1.41.0"]),
                         "same_invocation": True}
    elif args.bar_vs_stored and "flower 1.41.0" in result.get("rows", {}):
        edge = next(n for n in rows if n.startswith("edgefl"))
        flower = result["rows"]["flower 1.41.0"]
        result["bar"] = {"edgefl": edge, "flower": "flower 1.41.0", **bar(rows[edge], flower),
                         "same_invocation": False, "edgefl_machine": stamp,
                         "flower_machine": flower["machine"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result["rows"]))
    if "bar" in result:
        print(json.dumps(result["bar"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
