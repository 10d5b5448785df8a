"""Federated MNIST through Mosquitto: bytes each way and accuracy, fp32 vs coded updates and
coded announcements (one run).

10 agents (threads, each with its own MQTT client and persistent session) and the runtime's
aggregator exchange wire-format messages through a real Mosquitto broker. Data: the shipped
MNIST split (10k images; 80/20 train/test split, seed 0), train part split non-IID over the
clients with Dirichlet(alpha=0.5). Model: small_cnn. Every row uses the same seed, rounds,
local epochs and learning rate; only the codecs differ: the update codec (client -> server)
and the downlink codec (the announcements, server -> client: "none" sends the full fp32 model,
a codec sends a coded delta with a full snapshot retained for clients that need it).

Bytes are whole wire messages (safetensors header, metadata, signatures' room, side information
included). Up: the accepted updates as the aggregator received them. Down: what the agents
received, counted by each agent (announcements and snapshot fetches; status replies apart).
Agents start from the initial model, as they would from their bundle. Accuracy is the model the
clients hold (for coded announcements, the reference every client rebuilt, not the server's own
copy, which is scored apart); every agent's model digest is checked against the server's for
every round.

    python bench/fl_mnist.py                       # the rows below, 20 rounds
    python bench/fl_mnist.py --rows none fedfq-wire --merge
Writes bench/results/fl_mnist.json.
"""

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "fl_mnist.json"
FEDFQ_WIRE = {"rate": 0.0147, "budget": "wire", "rounding": "nearest"}  # 1/68 of fp32's bits
DOWN_FEDFQ = {"rate": 0.1, "budget": "wire", "rounding": "nearest"}
ROWS = {  # row name -> (update codec, options, downlink codec, options)
    "none": ("none", {}, "none", {}),
    "fedfq": ("fedfq", {"rate": 0.009}, "none", {}),
    "fedfq-wire": ("fedfq", FEDFQ_WIRE, "none", {}),
    "down-fedfq": ("none", {}, "fedfq", DOWN_FEDFQ),
    "both-fedfq": ("fedfq", FEDFQ_WIRE, "fedfq", DOWN_FEDFQ),
    "down-topk": ("none", {}, "topk", {"ratio": 0.05, "value_dtype": "fp16"}),
    "topk": ("topk", {"ratio": 0.01}, "none", {}),
    "rsdgc": ("rsdgc", {"ratio": 0.015}, "none", {}),
    "int8": ("int8", {}, "none", {}),
}
DEFAULT_ROWS = ["none", "fedfq", "fedfq-wire", "down-fedfq", "both-fedfq"]


def row_codecs(row, args):
    codec, options, down, down_options = ROWS[row]
    if row == "fedfq" and args.fedfq_rate:
        options = {"rate": args.fedfq_rate}
    if codec == "fedfq" and options.get("budget") == "wire" and args.wire_rate:
        options = dict(options, rate=args.wire_rate)
    if down == "fedfq" and args.down_rate:
        down_options = dict(down_options, rate=args.down_rate)
    return codec, options, down, down_options


def make_recording_agent(federation, seed, agents):
    """An agent factory whose agents note the digest of every model they hold, by round."""
    from edgefl.runtime.agent import AgentConfig, AgentCore

    class Recording(AgentCore):
        def on_message(self, topic, payload):
            job = super().on_message(topic, payload)
            if self.model is not None:
                self.loaded[self.model_round] = self.model_digest
            return job

    def make(cid):
        core = agents[cid] = Recording(AgentConfig(federation, cid, seed))
        core.loaded = {}
        return core

    return make


def digests_match(core, agents):
    """Every agent's model digest equals the server's for every round it held a model of."""
    announced = {h["round"]: h["base_digest"] for h in core.history}
    announced[core.round] = core.digest  # the final announcement
    rounds = sorted(announced)
    for cid, agent in agents.items():
        if sorted(agent.loaded) != rounds:
            raise SystemExit(f"{cid} held models of rounds {sorted(agent.loaded)}, not {rounds}")
        for r, digest in agent.loaded.items():
            if digest != announced[r]:
                raise SystemExit(f"{cid}: round {r} model {digest[:12]} != server's {announced[r][:12]}")
    return len(rounds)


def run_row(row, args, clients, test, preprocessing, init, broker):
    from edgefl.fl.experiment import bytes_sent_by_clients, evaluate_tensors, run_federation
    from edgefl.fl.torch_trainer import TorchTrainer
    from edgefl.models import build_model
    from edgefl.runtime.aggregator import AggregatorConfig
    from edgefl.runtime.config import make_transport
    from edgefl.runtime.transport.paho_mqtt import MqttOptions

    codec, options, down, down_options = row_codecs(row, args)
    ids = [f"sat-{i:02d}" for i in range(len(clients))]
    cfg = AggregatorConfig(
        federation=f"mnist-{row}",
        rounds=args.rounds,
        min_clients=len(ids),
        clients_per_round=len(ids),
        clients=ids,
        deadline_s=3600,
        codec=codec,
        codec_options=options,
        downlink_codec=down,
        downlink_options=down_options,
        seed=args.seed,
        train={"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "momentum": 0.9},
    )
    trainers = {
        cid: TorchTrainer(
            build_model("small_cnn", in_channels=1, num_classes=10), data, preprocessing, seed=args.seed + i
        )
        for i, (cid, data) in enumerate(zip(ids, clients))
    }
    mqtt = MqttOptions(host=broker.host, port=broker.port, username="edgefl")
    evaluator = build_model("small_cnn", in_channels=1, num_classes=10)
    curve = []

    def on_round(core, h):
        acc = evaluate_tensors(evaluator, core.global_model, test, preprocessing)["accuracy"]
        curve.append({"round": h["round"], "test_accuracy": acc, "bytes_in": h["bytes_in"]})
        print(
            f"  [{row}] round {h['round']:2d}: test acc {acc:.4f}, {h['bytes_in']:,} bytes up, "
            f"{h['announcement_bytes']:,} bytes announced to each",
            flush=True,
        )

    agents = {}
    start = time.perf_counter()
    core = run_federation(
        cfg,
        init,
        trainers,
        lambda cid: make_transport(cid, mqtt, args.max_payload),
        timeout=args.timeout,
        on_round=on_round,
        make_agent=make_recording_agent(cfg.federation, cfg.seed, agents),
    )
    seconds = round(time.perf_counter() - start, 1)
    announcements = digests_match(core, agents)
    received = {k: sum(a.received[k] for a in agents.values()) for k in ("round", "snapshot", "status")}
    down_bytes = received["round"] + received["snapshot"]
    server = evaluate_tensors(evaluator, core.server_model, test, preprocessing)["accuracy"]
    return {
        "row": row,
        "codec": codec,
        "codec_options": options,
        "downlink_codec": down,
        "downlink_options": down_options,
        "rounds": args.rounds,
        "final_accuracy": curve[-1]["test_accuracy"],
        "best_accuracy": max(c["test_accuracy"] for c in curve),
        "server_model_accuracy": server,
        "client_bytes": bytes_sent_by_clients(core),
        "bytes_up": bytes_sent_by_clients(core),
        "bytes_down": down_bytes,
        "bytes_down_status": received["status"],
        "snapshot_fetches_bytes": received["snapshot"],
        "announcements": announcements,
        "announcement_bytes_per_client_per_round": down_bytes / len(ids) / args.rounds,
        "server_published_bytes": sum(h["announcement_bytes"] + h["snapshot_bytes"] for h in core.history)
        + core.announce_bytes + core.snapshot_bytes,
        "digests_match_every_round": True,
        "seconds": seconds,
        "curve": curve,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, choices=sorted(ROWS))
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--fedfq-rate", type=float, default=None, help="rate of the 'fedfq' row")
    p.add_argument("--wire-rate", type=float, default=None, help="rate of the wire-budget FedFQ updates")
    p.add_argument("--down-rate", type=float, default=None, help="rate of the FedFQ announcements")
    p.add_argument("--merge", action="store_true", help="keep the other rows already in --out")
    p.add_argument("--max-payload", type=int, default=1 << 20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=7200)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import torch
    from rich.console import Console
    from rich.table import Table

    from edgefl.broker import SystemMosquitto
    from edgefl.data import MNIST_PREPROCESSING, load_mnist, train_test_split
    from edgefl.fl.experiment import client_datasets
    from edgefl.fl.torch_trainer import federated_tensors
    from edgefl.models import build_model

    torch.set_num_threads(1)
    train, test = train_test_split(load_mnist(), 0.2, args.seed)
    clients = client_datasets(train, args.clients, args.alpha, args.seed)
    torch.manual_seed(args.seed)
    init = federated_tensors(build_model("small_cnn", in_channels=1, num_classes=10))
    rows = []
    with SystemMosquitto() as broker:
        for row in args.rows:
            rows.append(run_row(row, args, clients, test, MNIST_PREPROCESSING, init, broker))
    if args.merge and args.out.exists():
        kept = [r for r in json.loads(args.out.read_text())["rows"] if r["row"] not in args.rows]
        rows = sorted(kept + rows, key=lambda r: list(ROWS).index(r["row"]) if r["row"] in ROWS else 99)
    base = next((r for r in rows if r["row"] == "none"), rows[0])
    for r in rows:
        r["compression_vs_fp32"] = base["bytes_up"] / r["bytes_up"]
        r["downlink_compression_vs_fp32"] = base["bytes_down"] / r["bytes_down"]
        r["accuracy_drop_points"] = 100 * (base["final_accuracy"] - r["final_accuracy"])
    result = {
        "bench": "fl_mnist",
        "transport": "mosquitto",
        "clients": args.clients,
        "alpha": args.alpha,
        "model": "small_cnn",
        "parameters": int(sum(v.size for v in init.values())),
        "train_examples": len(train),
        "test_examples": len(test),
        "rounds": args.rounds,
        "local_epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "torch_threads": 1,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    t = Table(
        title=f"federated MNIST, {args.clients} agents via Mosquitto, Dirichlet α={args.alpha}, "
        f"{args.rounds} rounds"
    )
    for c in (
        "row",
        "up codec",
        "down codec",
        "final acc",
        "drop (pts)",
        "MB up",
        "× fewer up",
        "MB down",
        "× fewer down",
        "KB down /client/round",
        "s",
    ):
        t.add_column(c)
    for r in rows:
        t.add_row(
            r["row"],
            f"{r['codec']} {json.dumps(r['codec_options'])}",
            f"{r['downlink_codec']} {json.dumps(r['downlink_options'])}",
            f"{r['final_accuracy']:.4f}",
            f"{r['accuracy_drop_points']:+.2f}",
            f"{r['bytes_up'] / 1e6:.2f}",
            f"{r['compression_vs_fp32']:.1f}",
            f"{r['bytes_down'] / 1e6:.2f}",
            f"{r['downlink_compression_vs_fp32']:.1f}",
            f"{r['announcement_bytes_per_client_per_round'] / 1e3:.1f}",
            f"{r['seconds']:.0f}",
        )
    Console(width=150).print(t)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
