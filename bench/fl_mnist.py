"""Federated MNIST through Mosquitto: FedAvg with fp32 updates vs compressed updates (one run).

10 agents (threads, each with its own MQTT client and persistent session) and the runtime's
aggregator exchange wire-format messages through a real Mosquitto broker. Data: the shipped
MNIST split (10k images; 80/20 train/test split, seed 0), train part split non-IID over the
clients with Dirichlet(alpha=0.5). Model: small_cnn. Every row uses the same seed, rounds,
local epochs and learning rate; only the update codec differs. Client bytes are the update
messages as sent (safetensors wire format, side information and headers included).

    python bench/fl_mnist.py                       # fp32 FedAvg + FedFQ rows
    python bench/fl_mnist.py --rows none fedfq topk --rounds 12
Writes bench/results/fl_mnist.json.
"""

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "fl_mnist.json"
ROW_CODECS = {  # row name -> (codec, options)
    "none": ("none", {}),
    "fedfq": ("fedfq", {"rate": 0.009}),
    "topk": ("topk", {"ratio": 0.01}),
    "rsdgc": ("rsdgc", {"ratio": 0.015}),
    "int8": ("int8", {}),
}


def run_row(row, args, clients, test, preprocessing, init, broker):
    from edgefl.fl.experiment import bytes_sent_by_clients, evaluate_tensors, run_federation
    from edgefl.fl.torch_trainer import TorchTrainer
    from edgefl.models import build_model
    from edgefl.runtime.aggregator import AggregatorConfig
    from edgefl.runtime.config import make_transport
    from edgefl.runtime.transport.paho_mqtt import MqttOptions

    codec, options = ROW_CODECS[row]
    if row == "fedfq" and args.fedfq_rate:
        options = {"rate": args.fedfq_rate}
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
            f"  [{row}] round {h['round']:2d}: test acc {acc:.4f}, {h['bytes_in']:,} client bytes", flush=True
        )

    start = time.perf_counter()
    core = run_federation(
        cfg,
        init,
        trainers,
        lambda cid: make_transport(cid, mqtt, args.max_payload),
        timeout=args.timeout,
        on_round=on_round,
    )
    return {
        "row": row,
        "codec": codec,
        "codec_options": options,
        "rounds": args.rounds,
        "final_accuracy": curve[-1]["test_accuracy"],
        "best_accuracy": max(c["test_accuracy"] for c in curve),
        "client_bytes": bytes_sent_by_clients(core),
        "seconds": round(time.perf_counter() - start, 1),
        "curve": curve,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=["none", "fedfq"], choices=sorted(ROW_CODECS))
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--fedfq-rate", type=float, default=None)
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
    base = next((r for r in rows if r["row"] == "none"), rows[0])
    for r in rows:
        r["compression_vs_fp32"] = base["client_bytes"] / r["client_bytes"]
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
        "codec options",
        "final acc",
        "best acc",
        "client MB",
        "× fewer bytes",
        "drop (pts)",
        "s",
    ):
        t.add_column(c)
    for r in rows:
        t.add_row(
            r["row"],
            json.dumps(r["codec_options"]),
            f"{r['final_accuracy']:.4f}",
            f"{r['best_accuracy']:.4f}",
            f"{r['client_bytes'] / 1e6:.2f}",
            f"{r['compression_vs_fp32']:.1f}",
            f"{r['accuracy_drop_points']:+.2f}",
            f"{r['seconds']:.0f}",
        )
    Console(width=150).print(t)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
