"""What each downlink message carries besides the model: byte breakdown of announcements and status
replies (issue 17's Flower table: every byte a satellite receives costs contact time).

The task of `bench/peer_flower.py` without training: the 20,490-parameter CNN (its tensor names and
shapes), 10 enrolled clients all sampled every round, FedFQ updates (rate 0.03, wire budget) and
FedFQ-coded announcements (`--down-rate`, wire budget, nearest rounding), the runtime's aggregator
and agents driven in memory (no broker: the payloads are the same bytes Mosquitto would carry).
Each client's update is its model plus seeded noise. For each of a few rounds, with and without an
Ed25519 announcement key, one announcement and one status reply are taken apart: the 8-byte length,
every `__metadata__` entry (as written, JSON escaping included; `params` and `metrics` key by key),
the tensor entries, the alignment padding and the coded tensor bytes.

    python bench/wire_overhead.py --label after          # adds/replaces the "after" entry
Writes bench/results/wire_overhead.json.
"""

import argparse
import json
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "wire_overhead.json"
SHAPES = OrderedDict([("body.0.weight", (16, 1, 3, 3)), ("body.0.bias", (16,)),
                      ("body.3.weight", (32, 16, 3, 3)), ("body.3.bias", (32,)),
                      ("classifier.weight", (10, 1568)), ("classifier.bias", (10,))])
UPLINK = {"rate": 0.03, "budget": "wire", "rounding": "nearest"}
TRAIN = {"epochs": 1, "lr": 0.05, "batch_size": 32, "momentum": 0.9}


def _entry_bytes(key, value):
    """Bytes of `"key":value` inside a compact JSON object, plus its comma."""
    return len(json.dumps(key)) + 1 + len(json.dumps(value)) + 1


def _inner_breakdown(text):
    """Per-key bytes of a JSON object written as a string inside the header (escaping counted)."""
    obj = json.loads(text)
    for seps in ((", ", ": "), (",", ":")):
        if json.dumps(obj, sort_keys=True, separators=seps) == text:
            break
    out = {}
    for k in obj:
        part = json.dumps({k: obj[k]}, sort_keys=True, separators=seps)[1:-1]
        out[k] = len(json.dumps(part)) - 2 + len(json.dumps(seps[0])) - 2
    return out


def breakdown(payload):
    """Where the bytes of one message go (pure)."""
    (n,) = struct.unpack("<Q", payload[:8])
    raw = payload[8:8 + n]
    header = json.loads(raw.decode("utf-8").rstrip(" "))
    meta = header.pop("__metadata__", {})
    out = {"total": len(payload), "length_prefix": 8, "header_json": n,
           "padding": len(raw) - len(raw.rstrip(b" ")), "tensor_data": len(payload) - 8 - n,
           "tensor_entries": sum(_entry_bytes(k, v) for k, v in header.items()),
           "metadata": {k: _entry_bytes(k, v) for k, v in meta.items()}}
    for k in ("params", "metrics"):
        if meta.get(k, "{}") != "{}":
            out[k] = _inner_breakdown(meta[k])
    return out


def run(rounds, down_rate, signed):
    from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
    from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish

    ids = ["client-{}".format(i) for i in range(10)]
    cfg = AggregatorConfig("peer", rounds=rounds, min_clients=10, clients_per_round=10, clients=ids,
                           deadline_s=3600, codec="fedfq", codec_options=UPLINK, downlink_codec="fedfq",
                           downlink_options={"rate": down_rate, "budget": "wire", "rounding": "nearest"},
                           train=TRAIN)
    rng = np.random.RandomState(0)
    model = OrderedDict((n, (rng.randn(*s) * 0.1).astype(np.float32)) for n, s in SHAPES.items())
    agg = AggregatorCore(cfg, model)
    verify_key = ""
    if signed:
        from edgefl.runtime.announce import AnnouncementSigner, generate_key_pair

        private, verify_key = generate_key_pair()
        agg.announce_signer = AnnouncementSigner(private)
    agents = {cid: AgentCore(AgentConfig("peer", cid, 0, announce_key=verify_key)) for cid in ids}
    for a in agents.values():
        a.preload(model)
    rows = []
    actions = agg.start(0.0)
    for r in range(1, rounds + 1):
        announce = [a for a in actions if isinstance(a, Publish) and a.topic == agg.topics.round][-1]
        statuses = []
        for i, (cid, agent) in enumerate(sorted(agents.items())):
            job = agent.on_message(announce.topic, announce.payload)
            assert job is not None, "{} did not train round {}: {}".format(cid, r, agent.log[-1:])
            noise = np.random.RandomState(1000 * r + i)
            local = {n: v + noise.normal(0, 0.01, v.shape).astype(np.float32)
                     for n, v in job.global_model.items()}
            topic, payload = agent.on_trained(job, TrainResult(local, 500, {"train_loss": 0.5}))
            out = agg.on_message(topic, payload, float(r))
            statuses += [a for a in out if isinstance(a, Publish) and a.topic == agg.topics.status(cid)]
            if any(isinstance(a, Publish) and a.topic == agg.topics.round for a in out):
                actions = out
        for s in statuses:
            agents[s.topic.rsplit("/", 1)[1]].on_message(s.topic, s.payload)
        rows.append({"round": r, "announcement": breakdown(announce.payload),
                     "status": breakdown(statuses[0].payload),
                     "update_bytes": len(payload)})
    return rows


def summarize(rows):
    ann = [r["announcement"] for r in rows]
    st = [r["status"] for r in rows]
    mean = lambda xs: round(sum(xs) / len(xs), 1)  # noqa: E731
    return {"announcement_bytes": mean([a["total"] for a in ann]),
            "announcement_tensor_bytes": mean([a["tensor_data"] for a in ann]),
            "announcement_not_model_bytes": mean([a["total"] - a["tensor_data"] for a in ann]),
            "status_bytes": mean([s["total"] for s in st]),
            "update_bytes": mean([r["update_bytes"] for r in rows]),
            "downlink_not_model_per_client_round": mean([a["total"] - a["tensor_data"] + s["total"]
                                                         for a, s in zip(ann, st)])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--down-rate", type=float, default=0.1)
    p.add_argument("--label", default="current", help="key of this run in the results file")
    p.add_argument("--note", default="", help="what was measured (e.g. the commit)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.update({"bench": "wire_overhead", "parameters": 20490, "clients": 10, "uplink": UPLINK,
                   "downlink": {"codec": "fedfq", "rate": args.down_rate, "budget": "wire",
                                "rounding": "nearest"}})
    entry = {"note": args.note} if args.note else {}
    for signed in (False, True):
        rows = run(args.rounds, args.down_rate, signed)
        name = "signed" if signed else "unsigned"
        entry[name] = {"summary": summarize(rows), "rounds": rows}
        print(name, json.dumps(entry[name]["summary"]))
        print("  round 2 announcement:", json.dumps(rows[1]["announcement"]))
        print("  round 2 status:", json.dumps(rows[1]["status"]))
    result.setdefault("runs", {})[args.label] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote {}".format(args.out))


if __name__ == "__main__":
    main()
