"""Fuzz an aggregator core in process: genuine signed updates from a few clients, thousands of
mutants (``edgefl.security.fuzz``) between them, and a check that the global model is exactly
what the genuine updates alone give.

Per round the order is: all but the last genuine update, then the mutants (so replays of
accepted updates are duplicates), then the last genuine update (which closes the round).
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
from edgefl.runtime.wire import decode_message, encode_message
from edgefl.security.fuzz import FuzzContext, mutants

SHAPES = OrderedDict([("fc.bias", (4,)), ("fc.weight", (4, 8))])


@dataclass
class FuzzReport:
    """Counts of one fuzz run."""

    tried: int = 0
    rejected: int = 0
    accepted_genuine: int = 0
    accepted_mutants: int = 0
    silent: int = 0  # mutants that got no status at all
    crashes: int = 0
    crash_examples: list = field(default_factory=list)
    by_reason: Counter = field(default_factory=Counter)
    by_kind: dict = field(default_factory=dict)
    model_matches_genuine_only: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            "tried": self.tried,
            "rejected": self.rejected,
            "accepted_genuine": self.accepted_genuine,
            "accepted_mutants": self.accepted_mutants,
            "silent": self.silent,
            "crashes": self.crashes,
            "crash_examples": self.crash_examples[:5],
            "rejected_by_reason": dict(sorted(self.by_reason.items())),
            "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(self.by_kind.items())},
            "model_matches_genuine_only": self.model_matches_genuine_only,
            "seconds": round(self.seconds, 3),
        }


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
            local_model(cid, job.global_model, job.round), 10 + len(cid) + ord(cid[-1]) % 7, {}
        )
        topic, payload = agent.on_trained(job, result)
        msg = signing.sign_message(keys[cid], decode_message(payload))
        out[cid] = encode_message(msg)
    return out


def run_core_fuzz(
    per_round: int = 2000, rounds: int = 2, clients: int = 4, seed: int = 0, max_bytes: int = 64 * 1024
):
    """Fuzz an AggregatorCore with ``per_round`` mutants per round.

    Returns:
        FuzzReport (crashes must be 0, accepted_mutants 0, silent 0, model_matches_genuine_only True).
    """
    ids = ["c%d" % i for i in range(clients)]
    keys = {cid: signing.key_from_hex(signing.generate_key()) for cid in ids}
    cfg = fuzz_config(ids, rounds, max_bytes)
    core = AggregatorCore(cfg, init_model())
    core.keyring = signing.Keyring(keys)
    clean = AggregatorCore(cfg, init_model())
    agents = {cid: AgentCore(AgentConfig("fuzz", cid)) for cid in ids}
    report, start = FuzzReport(), time.perf_counter()
    ann = _announcement(core.start(0.0))
    clean.start(0.0)
    previous: dict = {}
    for rnd in range(rounds):
        valid = genuine_updates(agents, keys, ann)
        ctx = FuzzContext(valid=valid, previous=previous, max_bytes=max_bytes)
        for cid in ids[:-1]:
            _accept_genuine(core, clean, cid, valid[cid], report)
            ctx.accepted[cid] = valid[cid]
        for kind, who, payload in mutants(ctx, per_round, seed=seed * 1000 + rnd):
            report.tried += 1
            _one_mutant(core, kind, who, payload, report)
        actions = _accept_genuine(core, clean, ids[-1], valid[ids[-1]], report)
        ann = _announcement(actions)
        previous = valid
    report.model_matches_genuine_only = core.done and all(
        np.array_equal(core.global_model[n], clean.global_model[n]) for n in SHAPES
    )
    report.seconds = time.perf_counter() - start
    return report


def _accept_genuine(core, clean, cid, payload, report):
    topic = core.topics.update(cid)
    actions = core.on_message(topic, payload, 0.0)
    clean.on_message(topic, payload, 0.0)
    if any(s.params.get("accepted") for s in _statuses(actions)):
        report.accepted_genuine += 1
    return actions


def _one_mutant(core, kind, who, payload, report):
    try:
        actions = core.on_message(core.topics.update(who), payload, 0.0)
    except Exception as exc:  # a crash is what the fuzzer hunts: count it, keep going
        report.crashes += 1
        report.crash_examples.append(
            {"kind": kind, "error": repr(exc), "trace": traceback.format_exc()[-800:]}
        )
        return
    statuses = _statuses(actions)
    if not statuses:
        report.silent += 1
        return
    status = statuses[0]
    if status.params.get("accepted"):
        report.accepted_mutants += 1
        report.crash_examples.append({"kind": kind, "error": "mutant accepted", "topic_client": who})
        return
    code = reason_code(str(status.params.get("reason", "")))
    report.rejected += 1
    report.by_reason[code] += 1
    report.by_kind.setdefault(kind, Counter())[code] += 1
