"""Fuzz an aggregator core in process: genuine signed updates from a few clients, thousands of
mutants (``edgefl.security.fuzz``) between them, and a check that the global model is exactly
what the genuine updates alone give.

Per round the order is: all but the last genuine update, then the mutants (so replays of
accepted updates are duplicates), a restart (the core rebuilt from its persisted bytes, which
gets every retained message on the update topics again and must ignore them), then the last
genuine update (which closes the round). Mutants travel through the in-memory broker and the
chunking layer the aggregator uses (``MemoryWire``), so retained and chunked mutants and chunk
floods meet the same code as on a real broker; ``edgefl.security.fuzz_live`` does the same
through Mosquitto against a real aggregator process.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np

from edgefl.runtime import signing
from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish
from edgefl.runtime.transport.chunking import ChunkingTransport
from edgefl.runtime.transport.memory import MemoryBroker, MemoryTransport
from edgefl.runtime.wire import decode_message, encode_message
from edgefl.security.fuzz import NO_STATUS, FuzzContext, mutants

SHAPES = OrderedDict([("fc.bias", (4,)), ("fc.weight", (4, 8))])


@dataclass
class FuzzReport:
    """Counts of one fuzz run."""

    tried: int = 0
    rejected: int = 0
    accepted_genuine: int = 0
    accepted_mutants: int = 0
    silent: int = 0  # mutants that got no status although one was due
    dropped: int = 0  # chunk floods the transport dropped (no status is due)
    answered_drops: int = 0  # chunk floods that got a status anyway (must be 0)
    retained_ignored: int = 0  # retained update messages a restarted aggregator ignored
    retained_answered: int = 0  # ... and those it answered or processed (must be 0)
    internal: int = 0  # rejections with reason "internal": an unexpected exception (must be 0)
    crashes: int = 0
    crash_examples: list = field(default_factory=list)
    by_reason: Counter = field(default_factory=Counter)
    by_kind: dict = field(default_factory=dict)
    model_matches_genuine_only: bool = False
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "tried": self.tried,
            "rejected": self.rejected,
            "accepted_genuine": self.accepted_genuine,
            "accepted_mutants": self.accepted_mutants,
            "silent": self.silent,
            "dropped": self.dropped,
            "answered_drops": self.answered_drops,
            "retained_ignored": self.retained_ignored,
            "retained_answered": self.retained_answered,
            "internal": self.internal,
            "crashes": self.crashes,
            "crash_examples": self.crash_examples[:5],
            "rejected_by_reason": dict(sorted(self.by_reason.items())),
            "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(self.by_kind.items())},
            "model_matches_genuine_only": self.model_matches_genuine_only,
            "seconds": round(self.seconds, 3),
            **self.extra,
        }

    @property
    def ok(self) -> bool:
        """Nothing crashed, nothing hostile was accepted or left unanswered, no root cause was
        left (no ``internal``), retained messages were ignored on restart, and the final model
        is bitwise the genuine-only model."""
        zero = (self.crashes, self.accepted_mutants, self.silent, self.answered_drops,
                self.retained_answered, self.internal)
        return not any(zero) and self.model_matches_genuine_only


def init_model(seed: int = 0) -> OrderedDict:
    rng = np.random.RandomState(seed)
    return OrderedDict((n, rng.randn(*s).astype(np.float32)) for n, s in SHAPES.items())


def local_model(client_id: str, global_model: dict, round_: int) -> OrderedDict:
    """A client's deterministic 'training' result: a small client/round-specific step."""
    rng = np.random.RandomState(sum(map(ord, client_id)) * 1000 + round_)
    return OrderedDict(
        (n, (np.asarray(v, np.float32) + np.float32(0.05) * rng.randn(*v.shape).astype(np.float32)))
        for n, v in global_model.items()
    )


def reason_code(reason: str) -> str:
    """``"wire: truncated: ..."`` -> ``"wire/truncated"``; ``"duplicate: ..."`` -> ``"duplicate"``."""
    parts = [p.strip() for p in reason.split(":")]
    if not parts[0]:
        return "(no reason)"
    return "/".join(parts[:2]) if parts[0] in ("wire", "codec") and len(parts) > 2 else parts[0]


def _announcement(actions):
    return next((a for a in actions if isinstance(a, Publish) and a.topic.endswith("/round")), None)


def _statuses(actions):
    return [decode_message(a.payload) for a in actions if isinstance(a, Publish) and "/status/" in a.topic]


def fuzz_config(clients: list[str], rounds: int, max_bytes: int) -> AggregatorConfig:
    return AggregatorConfig(
        federation="fuzz",
        clients=clients,
        min_clients=len(clients),
        rounds=rounds,
        deadline_s=1e9,
        max_norm=100.0,
        max_update_bytes=max_bytes,
    )


def genuine_updates(agents: dict, keys: dict, announcement) -> dict:
    """{client: signed update payload} for the announced round."""
    out = {}
    for cid, agent in agents.items():
        job = agent.on_message(announcement.topic, announcement.payload)
        result = TrainResult(
            local_model(cid, job.global_model, job.round),
            10 + len(cid) + ord(cid[-1]) % 7,
            {"loss": 1.0 / (job.round + ord(cid[-1]) % 7)},
        )
        topic, payload = agent.on_trained(job, result)
        msg = signing.sign_message(keys[cid], decode_message(payload))
        out[cid] = encode_message(msg)
    return out


class MemoryWire:
    """The in-memory broker between the fuzzer and the core: mutants are published (retained,
    on chunk topics) and read back through the chunking layer the aggregator uses."""

    def __init__(self, topics, max_bytes: int):
        self.broker, self.topics, self.max_bytes = MemoryBroker(), topics, max_bytes
        self.sender = MemoryTransport(self.broker, "fuzzer")
        self.sender.connect()
        self.receiver = self.subscribe("aggregator")

    def subscribe(self, client_id: str, clean_session: bool = False) -> ChunkingTransport:
        receiver = ChunkingTransport(MemoryTransport(self.broker, client_id, clean_session),
                                     max_payload=64 * 1024, max_message=self.max_bytes)
        receiver.connect()
        receiver.subscribe(self.topics.updates, 1)
        return receiver

    def deliver(self, topic: str, packets) -> list:
        for p in packets:
            self.sender.publish(topic + p.suffix, p.payload, 1, p.retain)
        return [e for e in self.receiver.poll() if e.kind == "message"]

    def perform(self, actions) -> None:
        """Publish what the core asked for on the update topics (clearing retained messages)."""
        for a in actions:
            if isinstance(a, Publish) and "/update/" in a.topic:
                self.sender.publish(a.topic, a.payload, a.qos, a.retain)


def run_core_fuzz(
    per_round: int = 2000, rounds: int = 2, clients: int = 4, seed: int = 0, max_bytes: int = 64 * 1024
):
    """Fuzz an AggregatorCore with ``per_round`` mutants per round.

    Returns:
        FuzzReport (``ok`` says whether it held).
    """
    ids = ["c%d" % i for i in range(clients)]
    keys = {cid: signing.key_from_hex(signing.generate_key()) for cid in ids}
    cfg = fuzz_config(ids, rounds, max_bytes)
    core = AggregatorCore(cfg, init_model())
    core.keyring = signing.Keyring(keys)
    clean = AggregatorCore(cfg, init_model())
    agents = {cid: AgentCore(AgentConfig("fuzz", cid)) for cid in ids}
    report, start = FuzzReport(), time.perf_counter()
    wire = MemoryWire(core.topics, max_bytes)
    ann = _announcement(core.start(0.0))
    clean.start(0.0)
    previous: dict = {}
    for rnd in range(rounds):
        valid = genuine_updates(agents, keys, ann)
        ctx = FuzzContext(valid=valid, previous=previous, max_bytes=max_bytes, keys=keys)
        for cid in ids[:-1]:
            _accept_genuine(core, clean, cid, valid[cid], report)
            ctx.accepted[cid] = valid[cid]
        for kind, who, packets in mutants(ctx, per_round, seed=seed * 1000 + rnd):
            report.tried += 1
            _one_mutant(core, wire, kind, who, packets, report)
        core = _restart(core, wire, report, "aggregator-%d" % rnd)
        actions = _accept_genuine(core, clean, ids[-1], valid[ids[-1]], report)
        ann = _announcement(actions)
        previous = valid
    report.model_matches_genuine_only = core.done and all(
        np.array_equal(core.global_model[n], clean.global_model[n]) for n in SHAPES
    )
    report.extra["transport_drops"] = dict(sorted(wire.receiver.drops.items()))
    report.seconds = time.perf_counter() - start
    return report


def _restart(core, wire, report, client_id):
    """The core rebuilt from its persisted bytes, fed what a fresh subscription gets: every
    retained message on the update topics, which it must ignore (and clear)."""
    restored = AggregatorCore.from_bytes(core.to_bytes())
    restored.keyring = core.keyring
    restored.start(0.0)
    fresh = wire.subscribe(client_id, clean_session=True)
    events = fresh.poll()
    fresh.close()
    for ev in events:
        if ev.kind != "message" or not ev.payload:
            continue
        actions = restored.on_message(ev.topic, ev.payload, 0.0, retain=ev.retain)
        if ev.retain and not _statuses(actions) and len(restored.accepted) == len(core.accepted):
            report.retained_ignored += 1
        else:
            report.retained_answered += 1
        wire.perform(actions)
    return restored


def _accept_genuine(core, clean, cid, payload, report):
    topic = core.topics.update(cid)
    actions = core.on_message(topic, payload, 0.0)
    clean.on_message(topic, payload, 0.0)
    if any(s.params.get("accepted") for s in _statuses(actions)):
        report.accepted_genuine += 1
    return actions


def _one_mutant(core, wire, kind, who, packets, report):
    drops = dict(wire.receiver.drops)
    try:
        actions = []
        for ev in wire.deliver(core.topics.update(who), packets):
            actions += core.on_message(ev.topic, ev.payload, 0.0, retain=ev.retain)
    except Exception as exc:  # a crash is what the fuzzer hunts: count it, keep going
        report.crashes += 1
        report.crash_examples.append(
            {"kind": kind, "error": repr(exc), "trace": traceback.format_exc()[-800:]}
        )
        return
    statuses = _statuses(actions)
    if kind in NO_STATUS:
        report.dropped += 1
        report.answered_drops += len(statuses)
        for reason, n in wire.receiver.drops.items():
            if n > drops.get(reason, 0):
                report.by_kind.setdefault(kind, Counter())["dropped/" + reason] += n - drops.get(reason, 0)
        return
    _count_status(report, kind, who, statuses[0] if statuses else None)


def _count_status(report, kind, who, status):
    """Book one mutant's status (None: it got none)."""
    if status is None:
        report.silent += 1
        return
    if status.params.get("accepted"):
        report.accepted_mutants += 1
        report.crash_examples.append({"kind": kind, "error": "mutant accepted", "topic_client": who})
        return
    code = reason_code(str(status.params.get("reason", "")))
    report.rejected += 1
    report.internal += code == "internal"
    report.by_reason[code] += 1
    if kind is not None:
        report.by_kind.setdefault(kind, Counter())[code] += 1
