"""Fuzz the aggregator with thousands of malformed and hostile updates: it never crashes, never
fails inside (no ``internal`` rejection), rejects every one with a reason (logged, and published
on the sender's status topic), drops chunk floods without holding them, ignores retained poison
after a restart, and the global model is bitwise what the genuine updates alone give."""

import os
from pathlib import Path

import pytest

from edgefl.runtime.service import AGGREGATOR_QUEUE_BYTES
from edgefl.security.fuzz import MUTATORS, NO_STATUS
from edgefl.security.fuzz_agent import run_agent_fuzz
from edgefl.security.fuzz_live import run_live_fuzz
from edgefl.security.fuzz_run import run_core_fuzz

WIRE = {"wire/bad-metadata", "wire/schema-version"}
ENTRY = {"wire/unsupported-dtype", "wire/bad-shape", "wire/bad-offsets", "wire/size-mismatch"}

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
    "unicode_numeral": WIRE,
    "zero_huge_shape": {"wire/bad-shape"},
    "entry_type": ENTRY,
    "metric_type": {"metrics", "signature"},  # a finite number in place of another is signed out
    "signed_metrics": {"metrics"},
    "params_type": {"params", "signature"},
    "chunk_flood": {"dropped/over-limit", "dropped/overflow", "dropped/sender-buffer",
                    "dropped/buffer-full", "dropped/inconsistent"},
}


def test_core_fuzz_thousands_of_mutants():
    report = run_core_fuzz(per_round=1500, rounds=2, seed=1)
    assert report.tried == 3000 and report.crashes == 0, report.crash_examples
    assert report.silent == 0 and report.accepted_mutants == 0 and report.internal == 0
    assert report.rejected + report.dropped == report.tried and report.accepted_genuine == 8
    assert report.dropped == sum(3000 // len(MUTATORS) + (i < 3000 % len(MUTATORS))
                                 for i, k in enumerate(MUTATORS) if k in NO_STATUS)
    assert report.answered_drops == 0 and report.retained_answered == 0
    assert report.retained_ignored >= 2  # each restart found retained poison and ignored it
    assert report.model_matches_genuine_only and report.ok
    assert set(report.by_kind) == set(MUTATORS)
    for kind, reasons in EXPECTED.items():
        assert set(report.by_kind[kind]) <= reasons, (kind, dict(report.by_kind[kind]))


def test_live_fuzz_through_mosquitto_with_a_kill_and_restart(broker, tmp_path):
    # Execute: 2 rounds x 1500 mutants and 40 MiB of chunks under one message id at a real
    # aggregator process through a real broker (signatures required), SIGKILLed and restarted
    # between the rounds; genuine updates of 4 clients around the mutants.
    report = run_live_fuzz(
        {"host": "127.0.0.1", "port": broker.port, "keepalive": 5},
        per_round=1500,
        rounds=2,
        flood_mib=40,
        folder=str(tmp_path / "live"),
    )
    # Assert: every mutant owed a status got one on its sender's topic with a reason, and is
    # in the aggregator's log; only the 8 genuine updates accepted; the process exited cleanly
    # after the last round; the restart ignored the retained poison; the floods were dropped
    # (logged) and the aggregator's memory stayed flat; the final model is the genuine-only one.
    assert report.crashes == 0 and report.extra["exit_code"] == 0, report.crash_examples
    assert report.tried == 3000 and report.rejected == 3000 - report.dropped
    assert report.accepted_genuine == 8 and report.accepted_mutants == 0 and report.silent == 0
    assert report.internal == 0 and report.extra["status_to_sender"]
    assert report.extra["statuses"] == 3008 - report.dropped
    assert report.extra["logged_rejections"] == report.rejected
    assert report.retained_ignored >= 1 and report.extra["logged_chunk_drops"] > 0
    assert report.extra["chunk_flood_mib"] > 40
    # What the aggregator's MQTT client may hold unhandled (a slow aggregator, e.g. on a loaded
    # machine, fills it: 18.9 MiB of growth was seen at load 30) plus its working set, far below
    # the 40+ MiB of floods it was sent.
    assert report.extra["rss_mib"]["growth"] < AGGREGATOR_QUEUE_BYTES / 2**20 + 8
    assert report.model_matches_genuine_only


# What each agent-side mutation is answered with (traced by the unique round it carries).
AGENT_EXPECTED = {
    "announce_param": {"bad-params", "codec", "delta encoding 'none' is not a known codec",
                       "params.delta must be an object"},
    "announce_model": {"model", "global model does not match its signed digest"},
    "announce_signature": {"bad-params", "announcement is not signed", "signature is not hex",
                           "bad signature"},
    "status_param": {"ignored: bad-params"},
}


@pytest.mark.parametrize("stack", ["host", "python36"])
def test_agent_fuzz_through_mosquitto(broker, tmp_path, request, stack):
    # Prepare: the agent on this interpreter, or on the Python 3.6 edge stack (paho 1.6,
    # numpy 1.19, onnxruntime 1.10) with only the runtime importable, as on the device
    edge = {}
    if stack == "python36":
        path = request.getfixturevalue("edge36_path")
        edge = {"python": request.getfixturevalue("python36"), "env": dict(os.environ, PYTHONPATH=path)}
    bundle = str(Path(__file__).resolve().parents[1] / "runtime" / "data" / "tiny_bundle")
    # Execute: 2 rounds x 300 malformed and hostile announcements and statuses (signed with the
    # aggregator's key where the schema is the target) at a real agent process through a real
    # broker, each round's genuine signed announcement after them.
    report = run_agent_fuzz({"host": "127.0.0.1", "port": broker.port, "keepalive": 5}, bundle,
                            per_round=300, rounds=2, folder=str(tmp_path / "agent"), **edge)
    # Assert: the agent ran to the final announcement and exited cleanly, never failed inside,
    # answered every traced mutant (4 classes of 7) with the reason its class calls for,
    # contributed once to each genuine round from the genuine model, and holds the
    # aggregator's final model.
    assert report.exit_code == 0 and report.internal == 0 and report.training_failed == 0, report.to_json()
    assert report.tried == 600 and report.untraced == 0 and report.traced == 4 * 86
    assert report.rounds_contributed == [1, 2] and report.updates_from_genuine_model
    assert report.final_model_matches and report.ok
    assert report.extra["logged_bad_messages"] > 0  # the byte-level mutants: logged, not fatal
    for kind, reasons in AGENT_EXPECTED.items():
        got = set(report.by_kind[kind]) - {"sent"}
        assert got <= reasons, (kind, dict(report.by_kind[kind]))
