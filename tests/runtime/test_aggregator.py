"""Aggregator and agent state machines over the in-memory transport."""
import threading
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish, Persist
from edgefl.runtime.loops import run_agent, serve_aggregator
from edgefl.runtime.transport.memory import MemoryBroker, MemoryTransport
from edgefl.runtime.wire import decode_message, encode_message


def announce(core_actions):
    return [a for a in core_actions if isinstance(a, Publish) and a.topic.endswith("/round")][-1]


def make_update(agg, client, shift, n=10, codec_state=None, round_msg=None):
    """What an agent would send for the aggregator's current announcement."""
    ag = AgentCore(AgentConfig(agg.cfg.federation, client))
    if codec_state is not None:
        ag.codec_state = codec_state
    payload = round_msg or announce([agg._announce()]).payload
    job = ag.on_message(agg.topics.round, payload)
    local = OrderedDict((k, v + np.float32(shift)) for k, v in job.global_model.items())
    return ag.on_trained(job, TrainResult(local, n, {"loss": float(shift)}))


def statuses(actions):
    out = []
    for a in actions:
        if isinstance(a, Publish) and "/status/" in a.topic:
            m = decode_message(a.payload)
            out.append((m.client_id, m.params["accepted"], m.params.get("reason", "")))
    return out


def test_sync_rounds_through_the_loops(small_model, shift_trainer):
    broker = MemoryBroker()
    cfg = AggregatorConfig("fed", rounds=2, min_clients=3, clients_per_round=3, deadline_s=30)
    agg = AggregatorCore(cfg, small_model)
    trainers = {"a": shift_trainer(1.0, 10), "b": shift_trainer(2.0, 30), "c": shift_trainer(-1.0, 60)}
    threads = []
    for cid, tr in trainers.items():
        core = AgentCore(AgentConfig("fed", cid))
        t = threading.Thread(target=run_agent, args=(core, MemoryTransport(broker, cid), tr),
                             kwargs=dict(timeout=20, poll_s=0.01))
        t.start()
        threads.append(t)
    serve_aggregator(agg, MemoryTransport(broker, "agg"), timeout=20, poll_s=0.01)
    for t in threads:
        t.join(25)
    assert agg.done and [h["round"] for h in agg.history] == [1, 2]
    shift = (1.0 * 10 + 2.0 * 30 - 1.0 * 60) / 100.0
    for n, v in small_model.items():
        np.testing.assert_allclose(agg.global_model[n], v + 2 * shift, atol=1e-5)
    assert all(tr.calls == 2 for tr in trainers.values())
    final = decode_message(broker.retained["edgefl/fed/round"])
    assert final.params["final"] and final.round == 3
    assert agg.history[0]["client_metrics"]["loss"] == pytest.approx(shift)
    assert broker.retained["edgefl/fed/online/a"] == b"offline"  # liveness after a clean exit


def test_every_bad_update_is_rejected_with_a_reason_and_changes_nothing(small_model):
    cfg = AggregatorConfig("fed", rounds=1, min_clients=2, clients=["a", "b", "c"],
                           clients_per_round=2, seed=1, max_norm=100.0)
    agg = AggregatorCore(cfg, small_model)
    agg.start(0.0)
    a, b = agg.sampled
    outsider = ({"a", "b", "c"} - set(agg.sampled)).pop()
    topic, good = make_update(agg, a, 0.5)
    msg = decode_message(good)

    def variant(**changes):
        m = decode_message(good)
        m.tensors = OrderedDict((k, np.array(v)) for k, v in m.tensors.items())
        for k, v in changes.items():
            setattr(m, k, v)
        return encode_message(m)

    nan = OrderedDict((k, np.full_like(v, np.nan)) for k, v in msg.tensors.items())
    huge = OrderedDict((k, np.full_like(v, 1e3)) for k, v in msg.tensors.items())
    wrong_shape = OrderedDict(msg.tensors)
    wrong_shape["fc.bias"] = np.zeros(6, np.float32)
    cases = [
        (a, b"garbage", "wire"),
        (a, variant(federation="other"), "federation"),
        (a, variant(base_digest="0" * 64), "base-digest"),
        (a, variant(round=7), "future-round"),
        (a, variant(client_id=b), "client-id"),
        (a, variant(num_examples=0), "num-examples"),
        (a, variant(encoding="fp16"), "encoding"),
        (a, variant(tensors=nan), "non-finite"),
        (a, variant(tensors=huge), "norm-bound"),
        (a, variant(tensors=wrong_shape), "codec"),
        (outsider, variant(client_id=outsider), "not-sampled"),
    ]
    for sender, payload, code in cases:
        acts = agg.on_message("edgefl/fed/update/" + sender, payload, 1.0)
        (cid, ok, reason), = statuses(acts)
        assert (cid, ok) == (sender, False) and reason.startswith(code + ":"), reason
        assert not any(isinstance(x, Persist) for x in acts)
    assert agg.rejected == len(cases) and not agg.accepted
    acts = agg.on_message(topic, good, 2.0)
    assert statuses(acts) == [(a, True, "")]
    (_, ok, reason), = statuses(agg.on_message(topic, good, 3.0))
    assert not ok and reason.startswith("duplicate:")


def test_deadline_closes_with_quorum_and_waits_below_it(small_model):
    cfg = AggregatorConfig("fed", rounds=5, min_clients=2, clients_per_round=4, deadline_s=10)
    agg = AggregatorCore(cfg, small_model)
    agg.start(0.0)
    agg.on_message(*make_update(agg, "a", 1.0), now=1.0)
    assert agg.tick(11.0) == [] and agg.round == 1  # below quorum: keep waiting
    agg.on_message(*make_update(agg, "b", 3.0), now=12.0)
    assert agg.round == 1
    acts = agg.tick(12.5)
    assert agg.round == 2 and announce(acts).retain
    assert agg.history[0]["clients"] == ["a", "b"]


def test_sampling_is_deterministic_and_unsampled_agents_skip(small_model):
    cfg = AggregatorConfig("fed", clients=["a", "b", "c", "d"], clients_per_round=2, seed=5)
    s1 = AggregatorCore(cfg, small_model)
    s1.start(0.0)
    s2 = AggregatorCore(cfg, small_model)
    s2.start(0.0)
    assert s1.sampled == s2.sampled and len(s1.sampled) == 2
    out = ({"a", "b", "c", "d"} - set(s1.sampled)).pop()
    agent = AgentCore(AgentConfig("fed", out))
    assert agent.on_message(s1.topics.round, s1._announce().payload) is None


def test_restart_resumes_the_same_round_and_model(small_model):
    cfg = AggregatorConfig("fed", rounds=1, min_clients=3, clients_per_round=3)
    ups = []
    ref = AggregatorCore(cfg, small_model)
    ref.start(0.0)
    for cid, s in (("a", 1.0), ("b", 2.0), ("c", 4.0)):
        ups.append(make_update(ref, cid, s, n=5))
    for topic, payload in ups:
        ref.on_message(topic, payload, 1.0)
    assert ref.done

    first = AggregatorCore(cfg, small_model)
    first.start(0.0)
    acts = first.on_message(ups[1][0], ups[1][1], 1.0)
    assert any(isinstance(a, Persist) for a in acts)
    blob = first.to_bytes()
    resumed = AggregatorCore.from_bytes(blob)  # "kill -9" here, then restart
    assert resumed.round == 1 and list(resumed.accepted) == [("b", 1)]
    assert statuses(resumed.on_message(ups[1][0], ups[1][1], 2.0))[0][1] is False  # duplicate
    for topic, payload in (ups[2], ups[0]):  # other order
        resumed.on_message(topic, payload, 2.0)
    assert resumed.done
    for n in small_model:
        assert resumed.global_model[n].tobytes() == ref.global_model[n].tobytes()


def test_async_buffered_mode_weights_stale_updates(small_model):
    cfg = AggregatorConfig("fed", mode="async", buffer_size=2, rounds=3, max_staleness=1)
    agg = AggregatorCore(cfg, small_model)
    v1 = announce(agg.start(0.0)).payload
    agg.on_message(*make_update(agg, "a", 1.0), now=1.0)
    agg.on_message(*make_update(agg, "b", 3.0), now=1.0)
    assert agg.round == 2
    after_v1 = OrderedDict((n, v.copy()) for n, v in agg.global_model.items())
    late = make_update(agg, "c", 2.0, round_msg=v1)  # trained on version 1: staleness 1
    agg.on_message(*late, now=2.0)
    agg.on_message(*make_update(agg, "a", 4.0), now=2.0)
    assert agg.round == 3
    w = 1 / np.sqrt(2.0)
    for n in small_model:
        np.testing.assert_allclose(agg.global_model[n], after_v1[n] + (2.0 * w + 4.0) / 2,
                                   atol=1e-5)
    too_old = make_update(agg, "d", 1.0, round_msg=v1)  # staleness 2 > max_staleness 1
    (_, ok, reason), = statuses(agg.on_message(*too_old, now=3.0))
    assert not ok and reason.startswith("base-digest:")


def test_offline_agent_finds_the_retained_round_and_queued_status(small_model, shift_trainer):
    broker = MemoryBroker()
    agent_t = MemoryTransport(broker, "sat")
    agent = AgentCore(AgentConfig("fed", "sat"))
    agent_t.connect()
    for t in agent.subscriptions():
        agent_t.subscribe(t)
    agent_t.close()  # out of contact, persistent session kept
    agg = AggregatorCore(AggregatorConfig("fed", rounds=1, min_clients=1), small_model)
    agg_t = MemoryTransport(broker, "agg")
    agg_t.connect()
    for a in agg.start(0.0):
        if isinstance(a, Publish):
            agg_t.publish(a.topic, a.payload, a.qos, a.retain)
    agent_t.connect()  # back in contact: the QoS-1 round message was queued
    events = [e for e in agent_t.poll() if e.kind == "message"]
    assert [e.topic for e in events] == ["edgefl/fed/round"]
    job = agent.on_message(events[0].topic, events[0].payload)
    assert job.round == 1


def test_async_mode_through_the_loops(small_model, shift_trainer):
    """FedBuff over the loops: 3 agents keep training on each new version, K = 2 per version."""
    broker = MemoryBroker()
    cfg = AggregatorConfig("fed", mode="async", buffer_size=2, rounds=3, max_staleness=2,
                           deadline_s=30)
    agg = AggregatorCore(cfg, small_model)
    threads = []
    for cid, s in (("a", 1.0), ("b", 2.0), ("c", 3.0)):
        t = threading.Thread(target=run_agent, args=(AgentCore(AgentConfig("fed", cid)),
                                                     MemoryTransport(broker, cid),
                                                     shift_trainer(s, 10)),
                             kwargs=dict(timeout=20, poll_s=0.01))
        t.start()
        threads.append(t)
    serve_aggregator(agg, MemoryTransport(broker, "agg"), timeout=20, poll_s=0.01)
    for t in threads:
        t.join(25)
    assert agg.done and [h["round"] for h in agg.history] == [1, 2, 3]
    assert all(len(h["clients"]) == 2 for h in agg.history)
    moved = agg.global_model["fc.bias"] - small_model["fc.bias"]
    assert np.all(moved > 0) and np.allclose(moved, moved[0], atol=1e-5)  # shifts are uniform


def test_agent_state_survives_a_restart(small_model):
    agg = AggregatorCore(AggregatorConfig("fed", codec="topk", codec_options={"ratio": 0.1}),
                         small_model)
    agg.start(0.0)
    first = AgentCore(AgentConfig("fed", "a"))
    job = first.on_message(agg.topics.round, agg._announce().payload)
    first.on_trained(job, TrainResult(
        OrderedDict((k, v + 1) for k, v in job.global_model.items()), 5, {}))
    again = AgentCore(AgentConfig("fed", "a"))
    again.restore(first.to_bytes())
    assert again.last_round == 1
    for n, r in first.codec_state["residual"].items():
        np.testing.assert_array_equal(again.codec_state["residual"][n], r)
    assert again.on_message(agg.topics.round, agg._announce().payload) is None  # no resubmit


def test_state_store_keeps_the_running_sum_not_the_updates_and_restarts(small_model, tmp_path):
    import os

    from edgefl.runtime.loops import open_aggregator
    from edgefl.runtime.state_store import StateStore

    # Prepare: a round of three; two updates arrive, the state is saved after each.
    cfg = AggregatorConfig("fed", rounds=2, min_clients=3, clients_per_round=3)
    path = str(tmp_path / "agg.state")
    store = StateStore(path)
    core = open_aggregator(cfg, small_model, path)
    core.start(0.0)
    store.save(core)
    ups = [make_update(core, c, s, n=5) for c, s in (("a", 1.0), ("b", 2.0), ("c", 4.0))]
    sizes = []
    for topic, payload in ups[:2]:
        core.on_message(topic, payload, 1.0)
        store.save(core)
        sizes.append(os.path.getsize(path))
    # Assert: the state holds the running sum, not the updates: it does not grow by an update,
    # no update is on disk, the models are written once per round beside it.
    assert sizes[1] - sizes[0] < 200 and not os.path.exists(path + ".updates")
    assert len(os.listdir(path + ".models")) == 1
    # Execute: "kill -9" and restart; the third update closes the round.
    resumed = open_aggregator(cfg, small_model, path)
    assert resumed.round == 1 and sorted(resumed.accepted) == [("a", 1), ("b", 1)]
    resumed.on_message(ups[2][0], ups[2][1], 2.0)
    store2 = StateStore(path)
    store2.save(resumed)
    # Assert: bitwise the model of the same updates in the reverse order, uninterrupted.
    assert resumed.round == 2 and resumed.accepted == OrderedDict()
    ref = AggregatorCore(cfg, small_model)
    ref.start(0.0)
    for topic, payload in reversed(ups):
        ref.on_message(topic, payload, 1.0)
    for n in small_model:
        assert resumed.global_model[n].tobytes() == ref.global_model[n].tobytes()
    assert len(os.listdir(path + ".models")) == 2  # round 1's models are kept one round longer
    for cid in ("a", "b", "c"):
        resumed.on_message(*make_update(resumed, cid, 1.0), now=3.0)
    store2.save(resumed)
    assert resumed.done and len(os.listdir(path + ".models")) == 1


def test_state_store_writes_each_kept_update_once_for_the_median(small_model, tmp_path):
    import os

    from edgefl.runtime.loops import open_aggregator
    from edgefl.runtime.state_store import StateStore

    # Prepare: the median needs every update of the round at once, so they are kept.
    cfg = AggregatorConfig("fed", rounds=1, min_clients=3, clients_per_round=3, strategy="median")
    path = str(tmp_path / "agg.state")
    store = StateStore(path)
    core = open_aggregator(cfg, small_model, path)
    core.start(0.0)
    ups = [make_update(core, c, s, n=5) for c, s in (("a", 1.0), ("b", 2.0), ("c", 4.0))]
    # Execute: two updates, saved after each (twice after the second), then a restart.
    for topic, payload in ups[:2]:
        core.on_message(topic, payload, 1.0)
        store.save(core)
    store.save(core)
    resumed = open_aggregator(cfg, small_model, path)
    resumed.on_message(ups[2][0], ups[2][1], 2.0)
    # Assert: one file per kept update; the restart closes the round with the median (b: +2).
    assert len(os.listdir(path + ".updates")) == 2 and resumed.done
    for n, v in small_model.items():
        np.testing.assert_allclose(resumed.global_model[n], v + 2.0, atol=1e-6)
