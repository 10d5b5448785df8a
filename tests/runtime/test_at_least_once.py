"""At-least-once delivery, end to end: an agent keeps its update until the aggregator's status
for that round arrives and resends it when the round is re-announced or ``resend_s`` passes; the
aggregator counts one update per (client, version), so a resend is never counted twice. Runs on
the edge stack too (Python 3.6)."""
import threading
import time
from collections import OrderedDict

import numpy as np

from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult, marked_resend
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish
from edgefl.runtime.loops import open_aggregator, run_agent, serve_aggregator
from edgefl.runtime.state_store import StateStore
from edgefl.runtime.transport.memory import MemoryBroker, MemoryTransport
from edgefl.runtime.wire import decode_message


def _train(agent, ann, shift=0.5):
    job = agent.on_message(ann.topic, ann.payload)
    local = OrderedDict((k, v + np.float32(shift)) for k, v in job.global_model.items())
    return agent.on_trained(job, TrainResult(local, 10, {"loss": shift}), now=100.0)


def _status_to(agent, actions):
    for a in actions:
        if isinstance(a, Publish) and a.topic == agent.topics.status(agent.cfg.client_id):
            agent.on_message(a.topic, a.payload)


def test_the_agent_resends_until_a_status_answers_its_round(kit, small_model):
    # Prepare: round 1 announced; the agent trained and sent at t=100 (resend_s 60).
    agg = AggregatorCore(AggregatorConfig("fed", rounds=2, min_clients=2), small_model)
    ann = kit.announce(agg.start(0.0))
    agent = AgentCore(AgentConfig("fed", "a", resend_s=60.0))
    update = _train(agent, ann)
    resent = (update[0], marked_resend(update[1]))  # the same update, saying it is a resend
    assert decode_message(resent[1]).params["resend"] is True
    # Execute + Assert: nothing due before the timeout; due after it; not due when the broker
    # delivers the same retained announcement again; due at once when a restarted aggregator
    # announces the round again (a new epoch).
    assert agent.resends(159.0) == []
    assert agent.resends(160.0) == [resent] and agent.resends(161.0) == []
    assert agent.on_message(ann.topic, ann.payload) is None  # already trained this round
    assert agent.resends(162.0) == []
    restarted = AggregatorCore.from_bytes(agg.to_bytes())
    again = kit.announce(restarted.start(1.0))
    assert agent.on_message(again.topic, again.payload) is None
    assert agent.resends(163.0) == [resent]
    # The status for round 1 (here: a duplicate after the first copy was counted) ends it.
    _status_to(agent, agg.on_message(*update, now=1.0))
    _status_to(agent, agg.on_message(*resent, now=2.0))
    assert [s[:2] for s in agent.statuses] == [(1, True), (1, False)]
    assert agent.pending is None and agent.resends(10 ** 6) == []
    assert agg.history == [] and list(agg.accepted) == [("a", 1)]  # counted once


def test_an_unanswered_update_survives_an_agent_restart(kit, small_model):
    agg = AggregatorCore(AggregatorConfig("fed", rounds=2, min_clients=2), small_model)
    ann = kit.announce(agg.start(0.0))
    first = AgentCore(AgentConfig("fed", "a"))
    update = _train(first, ann)
    again = AgentCore(AgentConfig("fed", "a"))
    again.restore(first.to_bytes())
    # sent before the restart, never answered
    assert again.resends(0.0) == [(update[0], marked_resend(update[1]))]


def test_a_resend_after_an_async_buffer_closed_is_a_duplicate(kit, small_model):
    # Prepare: FedBuff, K=2, staleness up to 2: a's update is folded into version 2.
    cfg = AggregatorConfig("fed", mode="async", buffer_size=2, rounds=5, max_staleness=2)
    agg = AggregatorCore(cfg, small_model)
    ann = kit.announce(agg.start(0.0))
    update = kit.make_update(agg, "a", 1.0)
    agg.on_message(*update, now=1.0)
    agg.on_message(*kit.make_update(agg, "b", 2.0), now=1.0)
    assert agg.round == 2
    # Execute: a resends the same update (its status was lost); version 1 is still accepted.
    ((_, ok, reason),) = kit.statuses(agg.on_message(*update, now=2.0))
    # Assert: a duplicate, also after a restart from the persisted state.
    assert not ok and reason.startswith("duplicate:"), reason
    restored = AggregatorCore.from_bytes(agg.to_bytes())
    ((_, ok, reason),) = kit.statuses(restored.on_message(*update, now=3.0))
    assert not ok and reason.startswith("duplicate:") and not restored.accepted
    assert ann.payload  # the version-1 announcement the update was trained on


class _Died(BaseException):
    """Stands for kill -9 of the aggregator (nothing catches it)."""


class _Eager(object):
    """A memory transport that takes every message from the broker as it arrives, like paho
    does (it acknowledges a QoS 1 message before the loop has looked at it): what is taken and
    not yet handled is lost when the process dies."""

    def __init__(self, inner):
        self.inner, self.taken, self.client_id = inner, [], inner.client_id
        self.updates_taken = 0
        self.lock, self.running = threading.Lock(), True
        self.thread = threading.Thread(target=self._pump)

    def _pump(self):
        while self.running:
            got = self.inner.poll(0.005)
            with self.lock:
                self.taken += got
                self.updates_taken += sum(e.kind == "message" and "/update/" in e.topic
                                          for e in got)

    def connect(self):
        self.inner.connect()
        self.thread.start()

    def poll(self, timeout=0.0):
        with self.lock:
            out, self.taken = self.taken, []
        return out

    def __getattr__(self, name):  # subscribe, publish, flush
        return getattr(self.inner, name)

    def close(self):
        self.running = False
        self.thread.join(5)
        self.inner.close()


def _agents(broker, shift_trainer, stop):
    threads = []
    for cid, shift in (("a", 1.0), ("b", 2.0), ("c", -1.0)):
        core = AgentCore(AgentConfig("fed", cid, resend_s=1000.0))  # resent on re-announcement
        t = threading.Thread(target=run_agent, args=(core, MemoryTransport(broker, cid),
                                                     shift_trainer(shift, 10 + len(threads))),
                             kwargs=dict(timeout=30, poll_s=0.01, stop=stop))
        t.start()
        threads.append(t)
    return threads


def test_updates_the_aggregator_took_but_never_persisted_are_resent(small_model, shift_trainer,
                                                                    tmp_path, monkeypatch):
    # Prepare: the reference run, uninterrupted.
    cfg = AggregatorConfig("fed", rounds=2, min_clients=3, clients_per_round=3, deadline_s=60)
    done = []
    broker = MemoryBroker()
    threads = _agents(broker, shift_trainer, lambda: bool(done))
    reference = serve_aggregator(AggregatorCore(cfg, small_model), MemoryTransport(broker, "r"),
                                 timeout=30, poll_s=0.01)
    for t in threads:
        t.join(30)
    # The aggregator dies persisting round 1's first update, once all three updates were taken
    # from the broker: none of them reaches the state file.
    state = str(tmp_path / "agg.state")
    save = StateStore.save
    broker = MemoryBroker()
    eager = _Eager(MemoryTransport(broker, "agg"))

    def dies_persisting_an_update(self, core):
        while core.accepted and eager.updates_taken < 3:
            time.sleep(0.005)
        if core.accepted:
            raise _Died()
        save(self, core)

    monkeypatch.setattr(StateStore, "save", dies_persisting_an_update)
    threads = _agents(broker, shift_trainer, lambda: bool(done))
    try:
        serve_aggregator(AggregatorCore(cfg, small_model), eager, state_path=state, timeout=30,
                         poll_s=0.01)
    except _Died:
        pass
    eager.close()
    # Execute: restart from the state file (round 1, nothing accepted).
    monkeypatch.undo()
    restarted = open_aggregator(cfg, small_model, state)
    assert restarted.round == 1 and not restarted.accepted
    serve_aggregator(restarted, MemoryTransport(broker, "agg"), state_path=state, timeout=30,
                     poll_s=0.01)
    done.append(True)
    for t in threads:
        t.join(30)
    # Assert: every round closed with all three clients; the model is bitwise the reference's.
    assert restarted.done and [h["clients"] for h in restarted.history] == [["a", "b", "c"]] * 2
    for n, v in reference.global_model.items():
        assert restarted.global_model[n].tobytes() == v.tobytes()
