"""Compressed announcements: coded deltas with server-side error feedback, the reference copy
every client reconstructs bit for bit, the snapshot fallback and signed deltas (pure cores, no
broker; Python 3.6 compatible)."""
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish
from edgefl.runtime.announce import AnnouncementSigner, AnnouncementVerifier, generate_key_pair
from edgefl.runtime.downlink import DownlinkCoder, reconstruct
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.wire import decode_message, encode_message, model_digest

PRIVATE, PUBLIC = generate_key_pair("python")
CODECS = [("int8", {}), ("topk", {"ratio": 0.1}), ("topk", {"ratio": 0.05, "value_dtype": "fp16"}),
          ("fedfq", {"rate": 0.1}), ("fp16", {})]


@pytest.fixture
def model(random_delta):
    return random_delta(1, 1.0)  # 4,210 parameters in a conv and a linear layer


def published(actions, suffix):
    return [a for a in actions if isinstance(a, Publish) and a.topic.endswith(suffix)]


def round_payload(actions):
    return published(actions, "/round")[-1].payload


class Fleet(object):
    """An aggregator and agents fed its announcements directly (every agent trains a fixed shift,
    distinct per agent and round, so the model moves everywhere)."""

    def __init__(self, model, codec, options, ids=("a", "b", "c"), **cfg):
        self.agg = AggregatorCore(AggregatorConfig(
            "fed", rounds=cfg.pop("rounds", 5), min_clients=cfg.pop("min_clients", len(ids)),
            clients_per_round=len(ids),
            downlink_codec=codec, downlink_options=options, **cfg), model)
        self.agents = OrderedDict((cid, AgentCore(AgentConfig("fed", cid))) for cid in ids)
        for core in self.agents.values():
            core.preload(model)

    def deliver(self, actions, to=None):
        """Feed the actions' announcements (snapshot to agents that ask for it); returns jobs."""
        jobs = {}
        for cid, core in self.agents.items():
            if to is not None and cid not in to:
                continue
            for a in actions:
                if not isinstance(a, Publish) or a.topic not in core.subscriptions():
                    continue
                job = core.on_message(a.topic, a.payload)
                if job is not None:
                    jobs[cid] = job
        return jobs

    def train(self, jobs, now=1.0):
        out = []
        for cid, job in sorted(jobs.items()):
            rng = np.random.RandomState(job.round * 31 + ord(cid[0]))
            local = OrderedDict((n, v + (rng.randn(*v.shape) * 0.01).astype(np.float32))
                                for n, v in job.global_model.items())
            out += self.agg.on_message(*self.agents[cid].on_trained(
                job, TrainResult(local, 10, {})), now=now)
        return out


@pytest.mark.parametrize("codec,options", CODECS)
def test_every_agent_reconstructs_the_servers_model_bit_for_bit(model, codec, options):
    fleet = Fleet(model, codec, options)
    actions = fleet.agg.start(0.0)
    for _ in range(6):  # 5 rounds and the final announcement
        jobs = fleet.deliver(actions)
        for core in fleet.agents.values():
            assert core.model_digest == fleet.agg.digest == model_digest(fleet.agg.global_model)
            assert core.model_round == fleet.agg.round and core.received["snapshot"] == 0
        if fleet.agg.done:
            break
        assert len(jobs) == 3
        actions = fleet.train(jobs)
        assert len(fleet.agg.history[-1]["clients"]) == 3  # every update named the right base
    assert fleet.agg.done and all(core.done for core in fleet.agents.values())
    full = len(published(actions, "/snapshot")[0].payload)
    assert all(h["announcement_bytes"] < full for h in fleet.agg.history[1:])


def test_top_k_error_feedback_by_hand():
    """target - reference = [5, -1, 0.5, 3]: top-1 sends 5, then 3, then -1, then 0.5."""
    ref = OrderedDict([("w", np.zeros(4, np.float32))])
    target = OrderedDict([("w", np.array([5, -1, 0.5, 3], np.float32))])
    coder = DownlinkCoder("topk", {"ratio": 0.25})
    sent = []
    for r in range(1, 5):
        tensors, params, ref = coder.step(ref, target, r)
        sent.append((int(tensors["w/i"][0]), float(tensors["w/v"][0])))
    assert sent == [(0, 5.0), (3, 3.0), (1, -1.0), (2, 0.5)]
    np.testing.assert_array_equal(ref["w"], target["w"])  # nothing is lost, only delayed


def test_reference_tracks_the_server_model(model):
    """Error feedback: with a moving target the reference stays close; it never drifts away."""
    rng = np.random.RandomState(0)
    coder = DownlinkCoder("fedfq", {"rate": 0.05})
    ref = OrderedDict((n, v.copy()) for n, v in model.items())
    target = OrderedDict((n, v.copy()) for n, v in model.items())
    gaps = []
    for r in range(1, 31):
        for n in target:
            target[n] = target[n] + (rng.randn(*target[n].shape) * 1e-2).astype(np.float32)
        _, _, ref = coder.step(ref, target, r)
        gaps.append(np.sqrt(sum(float(np.sum((target[n] - ref[n]) ** 2)) for n in ref)))
    step = np.sqrt(sum(v.size for v in model.values())) * 1e-2
    assert max(gaps[10:]) < 2 * step and max(gaps[20:]) < 1.5 * max(gaps[:10])


def test_a_delta_survives_the_wire_and_rebuilds_the_same_model(model):
    fleet = Fleet(model, "fedfq", {"rate": 0.1})
    fleet.agg.start(0.0)
    fleet.train(fleet.deliver(fleet.agg.start(0.0)))
    msg = decode_message(fleet.agg._announce().payload)
    d = msg.params["delta"]
    assert msg.encoding == "fedfq" and d["from_round"] == 1 and msg.round == 2
    assert d["digest"] == model_digest(msg.tensors)
    held = next(iter(fleet.agents.values()))
    rebuilt = reconstruct(held.model, msg.encoding, d["options"], msg.tensors, d["codec_params"])
    assert model_digest(rebuilt) == msg.base_digest == fleet.agg.digest


def test_an_agent_that_missed_a_version_loads_the_snapshot(model):
    fleet = Fleet(model, "topk", {"ratio": 0.1}, ids=("a", "b", "m"), clients=["a", "b", "m"],
                  min_clients=2, deadline_s=5)
    jobs = fleet.deliver(fleet.agg.start(0.0))
    actions = fleet.train(jobs)  # round 1: everyone
    jobs = fleet.deliver(actions, to=("a", "b"))  # m is out of contact for round 2
    actions = fleet.train(jobs) + fleet.agg.tick(10.0)  # closes at the deadline with a quorum
    m = fleet.agents["m"]
    assert fleet.agg.round == 3 and m.model_round == 1
    assert fleet.deliver([published(actions, "/round")[-1]], to=("m",)) == {}
    assert m.want_snapshot and m.topics.snapshot in m.subscriptions()
    assert any("fetching the snapshot" in text for _, text in m.log)
    jobs = fleet.deliver(published(actions, "/snapshot"), to=("m",))
    assert jobs["m"].round == 3 and m.model_digest == fleet.agg.digest
    assert not m.want_snapshot and m.topics.snapshot not in m.subscriptions()
    assert m.received["snapshot"] == len(published(actions, "/snapshot")[0].payload)
    assert m.outbox == []  # a missed version is not a refusal


def test_a_late_agent_without_a_model_starts_from_the_snapshot(model):
    fleet = Fleet(model, "int8", {})
    actions = fleet.train(fleet.deliver(fleet.agg.start(0.0)))
    late = AgentCore(AgentConfig("fed", "late"))
    assert late.topics.snapshot in late.subscriptions()  # no model yet: ask at once
    assert late.on_message(late.topics.round, round_payload(actions)) is None
    job = late.on_message(late.topics.snapshot, published(actions, "/snapshot")[0].payload)
    assert job.round == 2 and late.model_digest == fleet.agg.digest
    actions = fleet.train(fleet.deliver(actions))
    assert late.on_message(late.topics.round, round_payload(actions)).round == 3  # delta applies
    assert late.model_digest == fleet.agg.digest


def test_queued_deltas_chain_and_older_ones_are_ignored(model):
    fleet = Fleet(model, "topk", {"ratio": 0.2}, ids=("a",))
    away = AgentCore(AgentConfig("fed", "away"))
    away.preload(model)
    queue = []
    actions = fleet.agg.start(0.0)
    for _ in range(3):
        queue.append(round_payload(actions))
        actions = fleet.train(fleet.deliver(actions))
    queue.append(round_payload(actions))
    for payload in queue:  # what the broker queued for a persistent session, in order
        away.on_message(away.topics.round, payload)
    assert away.model_round == 4 and away.model_digest == fleet.agg.digest
    assert away.received["snapshot"] == 0
    assert away.on_message(away.topics.round, queue[1]) is None  # older delta: ignored
    assert away.model_round == 4 and away.outbox == [] and not away.want_snapshot


def test_restarted_aggregator_re_announces_the_same_delta(model):
    fleet = Fleet(model, "fedfq", {"rate": 0.05})
    actions = fleet.train(fleet.deliver(fleet.agg.start(0.0)))
    resumed = AggregatorCore.from_bytes(fleet.agg.to_bytes())
    again = [decode_message(a.payload) for a in resumed.start(5.0) if isinstance(a, Publish)]
    before = [decode_message(a.payload) for a in actions if isinstance(a, Publish) and a.retain]
    assert [m.params["epoch"] for m in again] == [2, 2]  # a new epoch: otherwise the same
    for m, b in zip(again, before):
        assert (m.round, m.base_digest, m.encoding, m.params.get("delta")) == \
            (b.round, b.base_digest, b.encoding, b.params.get("delta"))
        assert model_digest(m.tensors) == model_digest(b.tensors)
    for n in model:
        assert resumed.server_model[n].tobytes() == fleet.agg.server_model[n].tobytes()


def test_agent_state_keeps_its_model_across_a_restart(model):
    fleet = Fleet(model, "topk", {"ratio": 0.1}, ids=("a",))
    actions = fleet.train(fleet.deliver(fleet.agg.start(0.0)))
    fleet.deliver(actions)
    a = fleet.agents["a"]
    again = AgentCore(AgentConfig("fed", "a"))
    again.restore(a.to_bytes())
    assert again.model_digest == a.model_digest and not again.want_snapshot
    actions = fleet.train({"a": again.on_message(again.topics.round, round_payload(actions))})
    assert again.on_message(again.topics.round, round_payload(actions)).round == 3
    assert again.model_digest == fleet.agg.digest and again.received["snapshot"] == 0


def _tampered(payload, **changes):
    msg = decode_message(payload)
    msg.tensors = OrderedDict((k, np.array(v)) for k, v in msg.tensors.items())
    for name, value in changes.items():
        if name == "delta":
            msg.params["delta"] = dict(msg.params["delta"], **value)
        elif name == "first_tensor":
            k = sorted(msg.tensors)[0]
            msg.tensors[k] = value(msg.tensors[k])
        else:
            setattr(msg, name, value)
    return encode_message(msg)


def _sign(payload):
    msg = decode_message(payload)
    AnnouncementSigner(PRIVATE, "python").sign(msg)
    return encode_message(msg)


@pytest.mark.parametrize("change,reason", [
    ({"first_tensor": lambda t: t[::-1].copy()}, "coded delta does not match its signed digest"),
    ({"delta": {"from_digest": "zz"}}, "delta from_digest must be a sha256 hex digest"),
    ({"delta": {"options": []}}, "delta options must be an object"),
    ({"encoding": "nope"}, "delta encoding 'nope' is not a known codec"),
])
def test_broken_deltas_are_refused_without_a_crash(model, change, reason):
    fleet = Fleet(model, "fedfq", {"rate": 0.1}, ids=("a",))
    actions = fleet.train(fleet.deliver(fleet.agg.start(0.0)))
    a = fleet.agents["a"]
    assert a.on_message(a.topics.round, _tampered(round_payload(actions), **change)) is None
    assert a.model_round == 1 and reason in a.log[-1][1]
    assert decode_message(a.outbox[-1][1]).params["reason"] == "announcement: " + reason


def test_a_delta_whose_reconstruction_misses_its_digest_is_refused_then_the_snapshot_loads(
        model):
    fleet = Fleet(model, "int8", {}, ids=("a",))
    fleet.agg.announce_signer = AnnouncementSigner(PRIVATE, "python")
    actions = fleet.train(fleet.deliver(fleet.agg.start(0.0)))
    a = fleet.agents["a"]
    a.verifier = AnnouncementVerifier(PUBLIC, "python")
    # genuinely signed, but the signed digest is not the rebuilt model's
    bad = _sign(_tampered(round_payload(actions), base_digest="0" * 64))
    assert a.on_message(a.topics.round, bad) is None
    assert "reconstructed model does not match the signed digest" in a.log[-1][1]
    assert a.want_snapshot and a.model_round == 1
    assert a.on_message(a.topics.snapshot, published(actions, "/snapshot")[0].payload).round == 2
    assert a.model_digest == fleet.agg.digest


def test_signed_deltas_load_and_forged_ones_do_not(model):
    fleet = Fleet(model, "topk", {"ratio": 0.1}, ids=("a",))
    fleet.agg.announce_signer = AnnouncementSigner(PRIVATE, "python")
    a = fleet.agents["a"] = AgentCore(AgentConfig("fed", "a", announce_key=PUBLIC))
    a.preload(model)
    actions = fleet.train(fleet.deliver(fleet.agg.start(0.0)))
    genuine = round_payload(actions)
    other, _ = generate_key_pair("python")
    forged = _tampered(genuine, first_tensor=lambda t: t * 0)
    msg = decode_message(forged)
    msg.params["delta"]["digest"] = model_digest(msg.tensors)
    AnnouncementSigner(other, "python").sign(msg)
    assert a.on_message(a.topics.round, encode_message(msg)) is None
    assert "bad signature" in a.log[-1][1] and a.model_round == 1
    assert a.on_message(a.topics.round, genuine).round == 2
    assert a.model_digest == fleet.agg.digest


def test_downlink_options_are_checked(model):
    with pytest.raises(EdgeRuntimeError, match="downlink_codec must be one of"):
        AggregatorConfig("fed", downlink_codec="zip").check()
    with pytest.raises(EdgeRuntimeError, match="downlink: bad options for codec 'topk'"):
        AggregatorConfig("fed", downlink_codec="topk", downlink_options={"k": 3}).check()


def test_full_announcements_stay_as_they_were(model):
    """downlink_codec 'none': the full model on the round topic, no snapshot topic."""
    agg = AggregatorCore(AggregatorConfig("fed"), model)
    actions = agg.start(0.0)
    assert published(actions, "/snapshot") == []
    msg = decode_message(round_payload(actions))
    assert msg.encoding == "none" and "delta" not in msg.params
    assert model_digest(msg.tensors) == msg.base_digest == agg.digest
    assert agg.server_model is agg.global_model
