"""Fuzz the aggregator with thousands of malformed and hostile updates: it never crashes,
rejects every one with a reason (logged, and published on the sender's status topic), and the
global model is bitwise what the genuine updates alone give."""

import time
from collections import Counter, namedtuple

import numpy as np

from edgefl.runtime import signing
from edgefl.runtime.agent import AgentConfig, AgentCore
from edgefl.runtime.aggregator import AggregatorCore
from edgefl.runtime.config import make_transport
from edgefl.runtime.loops import wait_connected
from edgefl.runtime.wire import decode_message
from edgefl.security.fuzz import MUTATORS, FuzzContext, mutants
from edgefl.security.fuzz_run import fuzz_config, genuine_updates, init_model, reason_code, run_core_fuzz

# What each mutation must be rejected for (the first check that catches it).
EXPECTED = {
    "replay": {"duplicate"},
    "scaled": {"norm-bound"},
    "oversize": {"too-large"},
    "non_finite": {"non-finite"},
    "unsigned": {"signature"},
    "forged": {"signature"},
    "impersonate": {"signature"},
    "other_client": {"client-id"},
    "unknown_client": {"not-sampled"},
    "old_round": {"stale-round", "base-digest"},
    "wrong_tensors": {"codec/tensor-names", "codec/shape"},
    "truncated": {"wire/truncated", "wire/size-mismatch", "wire/bad-header-json"},
    "garbage": {"wire/truncated", "wire/header-too-large", "wire/bad-header-json"},
}


def test_core_fuzz_thousands_of_mutants(tmp_path):
    report = run_core_fuzz(per_round=1500, rounds=2, seed=1)
    assert report.tried == 3000 and report.crashes == 0, report.crash_examples
    assert report.silent == 0 and report.accepted_mutants == 0
    assert report.rejected == report.tried and report.accepted_genuine == 8
    assert report.model_matches_genuine_only
    assert set(report.by_kind) == set(MUTATORS)
    for kind, reasons in EXPECTED.items():
        assert set(report.by_kind[kind]) <= reasons, (kind, dict(report.by_kind[kind]))


Ann = namedtuple("Ann", "topic payload")


def test_live_fuzz_through_mosquitto(broker, flkit):
    # Prepare: an aggregator that requires signatures, behind a real broker; the fuzzer holds
    # the genuine clients' keys (to make their genuine updates) and sends everything else.
    clients = ["c0", "c1", "c2", "c3"]
    keys = {c: signing.key_from_hex(signing.generate_key()) for c in clients}
    cfg = fuzz_config(clients, rounds=2, max_bytes=64 * 1024)
    mqtt = {"host": "127.0.0.1", "port": broker.port, "keepalive": 5}
    agg = flkit.AggregatorThread(cfg, init_model(), mqtt, keyring=signing.Keyring(keys))
    fuzzer = make_transport("fuzzer", mqtt)
    fuzzer.subscribe(agg.core.topics.round, 1)
    fuzzer.subscribe(agg.core.topics.root + "/status/+", 1)
    fuzzer.connect()
    events = wait_connected(fuzzer, 10)
    statuses, announcements = [], {}

    def pump(until, timeout=60.0):
        end = time.monotonic() + timeout
        while not until() and time.monotonic() < end:
            for ev in events + fuzzer.poll(0.05):
                if ev.kind != "message" or not ev.payload:
                    continue
                msg = decode_message(ev.payload)
                if msg.kind == "round":
                    announcements[msg.round] = Ann(ev.topic, ev.payload)
                else:
                    statuses.append((ev.topic.rsplit("/", 1)[1], msg))
            del events[:]
        assert until(), (
            "timed out: {} statuses, aggregator alive={} round={} rejections={} accepted={}".format(
                len(statuses),
                agg.thread.is_alive(),
                agg.core.round,
                sum(agg.core.rejections.values()),
                [
                    (w, m.round, m.params.get("current_round"))
                    for w, m in statuses
                    if m.params.get("accepted")
                ],
            )
        )

    agents = {c: AgentCore(AgentConfig(cfg.federation, c)) for c in clients}
    clean = AggregatorCore(cfg, init_model())
    clean.start(0.0)
    sent_mutants, kinds, previous = 0, Counter(), {}
    try:
        for rnd in (1, 2):
            # Execute: genuine c0..c2, then the mutants, then genuine c3 (closes the round).
            pump(lambda: rnd in announcements)
            valid = genuine_updates(agents, keys, announcements[rnd])
            ctx = FuzzContext(valid=valid, previous=previous, max_bytes=cfg.max_update_bytes)
            for c in clients[:-1]:
                fuzzer.publish(agg.core.topics.update(c), valid[c], 1)
                ctx.accepted[c] = valid[c]
            for kind, who, payload in mutants(ctx, 1500, seed=rnd):
                fuzzer.publish(agg.core.topics.update(who), payload, 1)
                sent_mutants += 1
                kinds[kind] += 1
            expected_statuses = sent_mutants + 3 * rnd + (rnd - 1)
            pump(lambda: len(statuses) >= expected_statuses)
            fuzzer.publish(agg.core.topics.update(clients[-1]), valid[clients[-1]], 1)
            for c in clients:
                clean.on_message(agg.core.topics.update(c), valid[c], 0.0)
            previous = valid
        agg.join()
        pump(lambda: len(statuses) >= sent_mutants + 8)
    finally:
        fuzzer.close()
        agg.stop()

    # Assert: 3000 mutants, each answered on its sender's status topic with a reason; only the
    # 8 genuine updates accepted; the aggregator logged every rejection; the final model is the
    # genuine-only model, bitwise; nothing crashed (the serve loop ran to the end).
    accepted = [(who, m.round) for who, m in statuses if m.params.get("accepted")]
    rejected = [(who, m) for who, m in statuses if not m.params.get("accepted")]
    assert sent_mutants == 3000 and len(statuses) == sent_mutants + 8
    assert sorted(accepted) == sorted((c, r) for c in clients for r in (1, 2))
    assert len(rejected) == sent_mutants and all(m.params.get("reason") for _, m in rejected)
    assert all(m.client_id == who for who, m in rejected)  # status went to the topic's sender
    assert len([line for line in agg.lines if "rejected update" in line[1]]) == sent_mutants
    assert sum(agg.core.rejections.values()) == sent_mutants
    assert agg.core.done and not agg.thread.is_alive()
    assert all(np.array_equal(agg.core.global_model[n], clean.global_model[n]) for n in clean.global_model)
    codes = Counter(reason_code(m.params["reason"]) for _, m in rejected)
    assert {"duplicate", "norm-bound", "too-large", "non-finite", "signature", "client-id"} <= set(codes)
