"""Fuzz the aggregator with thousands of malformed and hostile updates: it never crashes,
rejects every one with a reason (logged, and published on the sender's status topic), and the
global model is bitwise what the genuine updates alone give."""

from edgefl.security.fuzz import MUTATORS
from edgefl.security.fuzz_run import run_core_fuzz, run_live_fuzz

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


def test_live_fuzz_through_mosquitto(broker):
    # Execute: 2 rounds x 1500 mutants at the runtime's serve loop through a real broker
    # (signatures required); genuine updates of 4 clients around them.
    report = run_live_fuzz(
        {"host": "127.0.0.1", "port": broker.port, "keepalive": 5}, per_round=1500, rounds=2
    )
    # Assert: 3000 mutants, each answered on its sender's status topic with a reason and
    # logged; only the 8 genuine updates accepted; no crash; the final model is bitwise the
    # genuine-only model.
    assert report.crashes == 0, report.crash_examples
    assert report.tried == 3000 and report.rejected == 3000
    assert report.accepted_genuine == 8 and report.accepted_mutants == 0 and report.silent == 0
    assert report.extra["statuses"] == 3008 and report.extra["status_to_sender"]
    assert report.extra["logged"] == report.extra["aggregator_rejections"] == 3000
    assert report.model_matches_genuine_only
    assert {"duplicate", "norm-bound", "too-large", "non-finite", "signature", "client-id"} <= set(
        report.by_reason
    )
