"""Signed round announcements: the aggregator signs, the agent state machine refuses what the
aggregator's key did not sign, what does not match its signed digest, and older rounds than the
one it loaded — with a reason in its log and on its status topic — and keeps its current round
(Python 3.6 compatible)."""
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish
from edgefl.runtime.announce import (AnnouncementSigner, AnnouncementVerifier, BACKENDS,
                                     generate_key_pair, load_backend)
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.wire import decode_message, encode_message

PRIVATE, PUBLIC = generate_key_pair("python")


def announcement(actions):
    return [a for a in actions if isinstance(a, Publish) and a.topic.endswith("/round")][-1]


def signed_aggregator(model, private=PRIVATE, rounds=3):
    agg = AggregatorCore(AggregatorConfig("fed", rounds=rounds, min_clients=1), model)
    agg.announce_signer = AnnouncementSigner(private, "python")
    return agg


def next_round(agg, agent_id="helper"):
    """Close the aggregator's round with one update; returns the new announcement payload."""
    ag = AgentCore(AgentConfig("fed", agent_id))
    job = ag.on_message(agg.topics.round, agg._announce().payload)
    local = OrderedDict((k, v + np.float32(0.5)) for k, v in job.global_model.items())
    return announcement(agg.on_message(*ag.on_trained(job, TrainResult(local, 5, {})), now=1.0)).payload


def agent(key=PUBLIC):
    return AgentCore(AgentConfig("fed", "a", announce_key=key))


def refusals(core):
    out = []
    for topic, payload in core.outbox:
        msg = decode_message(payload)
        assert topic == "edgefl/fed/agent-status/a" and msg.kind == "status"
        out.append((msg.round, msg.params["accepted"], msg.params.get("reason", "")))
    return out


def test_signed_announcement_is_loaded(small_model):
    agg = signed_aggregator(small_model)
    payload = announcement(agg.start(0.0)).payload
    core = agent()
    job = core.on_message(agg.topics.round, payload)
    assert job is not None and job.round == 1 and core.model_round == 1
    assert core.outbox == [] and not any(level == "warn" for level, _ in core.log)


def _forged(model, **changes):
    msg = decode_message(announcement(signed_aggregator(model).start(0.0)).payload)
    msg.tensors = OrderedDict((k, np.array(v)) for k, v in msg.tensors.items())
    for name, value in changes.items():
        if name == "params":
            msg.params.update(value)
        else:
            setattr(msg, name, value)
    return encode_message(msg)


def test_forged_announcements_are_refused_with_a_reason(small_model):
    other_private, _ = generate_key_pair("python")
    poisoned = OrderedDict((k, v * 100) for k, v in small_model.items())
    unsigned = AggregatorCore(AggregatorConfig("fed", min_clients=1), poisoned)
    cases = [
        (announcement(unsigned.start(0.0)).payload, "announcement is not signed"),
        (announcement(signed_aggregator(poisoned, other_private).start(0.0)).payload,
         "bad signature"),
        (_forged(small_model, params={"train": {"lr": 100.0}}), "bad signature"),
        (_forged(small_model, round=9), "bad signature"),
        (_forged(small_model, params={"signature": "zz"}), "signature is not hex"),
        (_forged(small_model, tensors=poisoned), "global model does not match its signed digest"),
    ]
    for payload, reason in cases:
        core = agent()
        assert core.on_message("edgefl/fed/round", payload) is None
        (round_, ok, said), = refusals(core)
        assert not ok and said.startswith("announcement: " + reason), said
        assert core.current is None and core.model_round == 0
        assert any(level == "warn" and reason in text for level, text in core.log)


def test_a_forgery_after_a_genuine_round_keeps_the_genuine_one(small_model):
    agg = signed_aggregator(small_model)
    genuine = announcement(agg.start(0.0)).payload
    core = agent()
    job = core.on_message(agg.topics.round, genuine)
    forged_final = AggregatorCore(AggregatorConfig("fed", min_clients=1), small_model)
    forged_final.round = 5
    for payload in [forged_final._announce(final=True).payload,
                    _forged(small_model, round=7, params={"final": True})]:
        assert core.on_message(agg.topics.round, payload) is None
    assert not core.done and core.current.round == 1 and core.model_round == 1
    assert len(refusals(core)) == 2
    topic, update = core.on_trained(job, TrainResult(job.global_model, 3, {}))  # still trains round 1
    assert decode_message(update).base_digest == agg.digest


def test_replayed_older_round_is_refused_even_after_a_restart(small_model):
    agg = signed_aggregator(small_model)
    round1 = announcement(agg.start(0.0)).payload
    round2 = next_round(agg)
    core = agent()
    assert core.on_message(agg.topics.round, round2).round == 2
    assert core.on_message(agg.topics.round, round1) is None
    (said,) = [r for _, _, r in refusals(core)]
    assert "round 1 is older than round 2" in said and core.current.round == 2
    assert core.on_message(agg.topics.round, round2) is not None  # the same round again: fine
    restarted = agent()
    restarted.restore(core.to_bytes())  # never trained: model_round alone keeps it at 2
    assert restarted.last_round == 0 and restarted.model_round == 2
    assert restarted.on_message(agg.topics.round, round1) is None and refusals(restarted)


def test_signed_final_round_ends_the_agent(small_model):
    agg = signed_aggregator(small_model, rounds=1)
    core = agent()
    core.on_message(agg.topics.round, announcement(agg.start(0.0)).payload)
    final = next_round(agg)
    assert decode_message(final).params["final"]
    assert core.on_message(agg.topics.round, final) is None and core.done and not core.outbox


def test_without_a_key_unsigned_rounds_still_load(small_model):
    unsigned = AggregatorCore(AggregatorConfig("fed", min_clients=1), small_model)
    assert agent(key="").on_message("edgefl/fed/round", announcement(unsigned.start(0.0)).payload)


@pytest.mark.parametrize("signer_backend", sorted(BACKENDS))
@pytest.mark.parametrize("verifier_backend", sorted(BACKENDS))
def test_backends_verify_each_other(small_model, signer_backend, verifier_backend):
    for name in (signer_backend, verifier_backend):
        if name == "cryptography":
            pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    agg = AggregatorCore(AggregatorConfig("fed", min_clients=1), small_model)
    agg.announce_signer = AnnouncementSigner(PRIVATE, signer_backend)
    msg = decode_message(announcement(agg.start(0.0)).payload)
    verifier = AnnouncementVerifier(PUBLIC, verifier_backend)
    assert verifier.problem(msg) is None
    msg.params["deadline"] += 1.0
    assert verifier.problem(msg).startswith("bad signature")


def test_keys_and_backends_are_checked():
    with pytest.raises(EdgeRuntimeError, match="64 hex digits"):
        AgentCore(AgentConfig("fed", "a", announce_key="abcd"))
    with pytest.raises(EdgeRuntimeError, match="64 hex digits"):
        AnnouncementSigner("not hex at all")
    with pytest.raises(EdgeRuntimeError, match="unknown Ed25519 backend"):
        load_backend("openssl3")
    assert load_backend().name in BACKENDS
