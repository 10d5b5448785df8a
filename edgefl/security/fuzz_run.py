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
    extra: dict = field(default_factory=dict)

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
            **self.extra,
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


def run_live_fuzz(
    mqtt: dict,
    per_round: int = 1500,
    rounds: int = 2,
    clients: int = 4,
    seed: int = 0,
    max_bytes: int = 64 * 1024,
    timeout: float = 120.0,
) -> FuzzReport:
    """The same fuzz through a real broker: the runtime's serve loop (in a thread) behind
    ``mqtt`` (MqttOptions fields), a fuzzer client that sends genuine and mutant updates and
    reads every status. Per-mutation counts are not known here (statuses carry reasons, not the
    mutation), so ``by_kind`` holds what was sent.

    Returns:
        FuzzReport; ``extra`` holds ``logged`` (rejection log lines), ``status_to_sender`` (every
        status went to the topic's sender) and ``statuses`` (count).
    """
    import threading

    from edgefl.runtime.config import make_transport
    from edgefl.runtime.loops import serve_aggregator, wait_connected

    ids = ["c%d" % i for i in range(clients)]
    keys = {cid: signing.key_from_hex(signing.generate_key()) for cid in ids}
    cfg = fuzz_config(ids, rounds, max_bytes)
    core, clean = AggregatorCore(cfg, init_model()), AggregatorCore(cfg, init_model())
    core.keyring = signing.Keyring(keys)
    clean.start(0.0)
    lines, failures, stop = [], [], threading.Event()
    agg_transport = make_transport("aggregator", mqtt)

    def serve():
        try:
            serve_aggregator(
                core,
                agg_transport,
                stop=stop.is_set,
                timeout=timeout,
                poll_s=0.02,
                log=lambda *line: lines.append(line),
            )
        except Exception:  # a crash of the live aggregator: recorded, the fuzzer stops waiting
            failures.append(traceback.format_exc()[-800:])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    fuzzer = make_transport("fuzzer", mqtt)
    fuzzer.subscribe(core.topics.round, 1)
    fuzzer.subscribe(core.topics.root + "/status/+", 1)
    fuzzer.connect()
    events = wait_connected(fuzzer, 10)
    statuses, announcements, report = [], {}, FuzzReport()
    start = time.perf_counter()

    def pump(until, limit=timeout):
        end = time.monotonic() + limit
        while not until() and not failures and time.monotonic() < end:
            for ev in events + fuzzer.poll(0.05):
                if ev.kind == "message" and ev.payload:
                    msg = decode_message(ev.payload)
                    if msg.kind == "round":
                        announcements[msg.round] = Publish(ev.topic, ev.payload, 1, True)
                    else:
                        statuses.append((ev.topic.rsplit("/", 1)[1], msg))
            del events[:]
        return until()

    agents = {cid: AgentCore(AgentConfig(cfg.federation, cid)) for cid in ids}
    previous, sent = {}, 0
    try:
        for rnd in range(1, rounds + 1):
            if not pump(lambda: rnd in announcements):
                break
            valid = genuine_updates(agents, keys, announcements[rnd])
            ctx = FuzzContext(valid=valid, previous=previous, max_bytes=max_bytes)
            for cid in ids[:-1]:  # all but one genuine update, so replays are duplicates
                fuzzer.publish(core.topics.update(cid), valid[cid], 1)
                ctx.accepted[cid] = valid[cid]
            for kind, who, payload in mutants(ctx, per_round, seed=seed * 1000 + rnd):
                fuzzer.publish(core.topics.update(who), payload, 1)
                report.by_kind.setdefault(kind, Counter())["sent"] += 1
                sent += 1
            if not pump(lambda: len(statuses) >= sent + len(ids) * rnd - 1):
                break
            fuzzer.publish(core.topics.update(ids[-1]), valid[ids[-1]], 1)
            for cid in ids:
                clean.on_message(core.topics.update(cid), valid[cid], 0.0)
            previous = valid
        pump(lambda: len(statuses) >= sent + len(ids) * rounds, 30)
        thread.join(30)
    finally:
        stop.set()
        fuzzer.close()
        thread.join(10)
        agg_transport.close()
    genuine = {(cid, r) for cid in ids for r in range(1, rounds + 1)}
    accepted = [(who, m.round) for who, m in statuses if m.params.get("accepted")]
    report.tried = sent
    report.accepted_genuine = len([a for a in accepted if a in genuine])
    report.accepted_mutants = len(accepted) - report.accepted_genuine
    for _, m in statuses:
        if not m.params.get("accepted"):
            report.rejected += 1
            report.by_reason[reason_code(str(m.params.get("reason", "")))] += 1
    report.silent = max(0, sent - report.rejected - report.accepted_mutants)
    report.crashes = len(failures)
    report.crash_examples = [{"error": f} for f in failures]
    report.model_matches_genuine_only = core.done and all(
        np.array_equal(core.global_model[n], clean.global_model[n]) for n in SHAPES
    )
    report.seconds = time.perf_counter() - start
    report.extra = {
        "statuses": len(statuses),
        "logged": len([line for line in lines if "rejected update" in line[1]]),
        "status_to_sender": all(m.client_id == who for who, m in statuses),
        "aggregator_rejections": sum(core.rejections.values()),
    }
    return report
