"""Coded-delta announcements through a real Mosquitto: every agent's model digest equals the
server's after every round, including an agent that misses versions and chains the deltas the
broker queued for it, one that misses versions without a session and loads the snapshot, and
one that joins late with no model at all (Python 3.6 compatible: also runs on the edge stack)."""
import threading
import time
from collections import OrderedDict

import numpy as np

from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult, Trainer
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore
from edgefl.runtime.config import make_transport
from edgefl.runtime.loops import run_agent, serve_aggregator
from edgefl.runtime.transport.paho_mqtt import MqttOptions

CLIENTS = ["a", "b", "late", "m-queue", "m-snapshot"]


class Recording(AgentCore):
    """An agent that notes the digest of every model it holds, by round."""

    def __init__(self, config):
        super(Recording, self).__init__(config)
        self.loaded = OrderedDict()

    def on_message(self, topic, payload):
        job = super(Recording, self).on_message(topic, payload)
        if self.model is not None:
            self.loaded[self.model_round] = self.model_digest
        return job


class Announced(AggregatorCore):
    """An aggregator that notes the digest of every model it announces, by round."""

    announced = None

    def _advance_reference(self, round_):
        super(Announced, self)._advance_reference(round_)
        if self.announced is None:
            self.announced = OrderedDict()
        self.announced[round_] = self.digest


class Noise(Trainer):
    def __init__(self, seed):
        self.rng = np.random.RandomState(seed)

    def train(self, global_model, options):
        return TrainResult(OrderedDict((n, v + (self.rng.randn(*v.shape) * 0.01).astype(np.float32))
                                       for n, v in global_model.items()), 10, {})


def _accepted(agg):
    while True:  # the server's thread may be changing the dict
        try:
            return set(c for c, _ in list(agg.accepted))
        except RuntimeError:
            pass


def _deadline_once_in(agg, clock, clients, wall_end, leaving=()):
    """Once ``clients`` are in the open round (and the ``leaving`` threads have ended), move the
    aggregator's clock past the round's deadline."""
    while agg.round == 0 or not clients <= _accepted(agg) or any(t.is_alive() for t in leaving):
        assert time.time() < wall_end, "round {} never held {}".format(agg.round, sorted(clients))
        time.sleep(0.02)
    round_ = agg.round
    clock[0] += agg.cfg.deadline_s
    while agg.round == round_:
        assert time.time() < wall_end, "round {} did not close at its deadline".format(round_)
        time.sleep(0.02)


class Watcher(object):
    """The highest round the broker has delivered on the round and snapshot topics: a round the
    aggregator opened in memory is not yet what a connecting agent gets from the broker."""

    def __init__(self, mqtt):
        from edgefl.runtime.transport import Topics
        from edgefl.runtime.wire import decode_message

        self.decode, self.topics = decode_message, Topics("dl")
        self.seen = {self.topics.round: 0, self.topics.snapshot: 0}
        self.transport = make_transport("watcher", mqtt)
        self.transport.connect()
        for topic in self.seen:
            self.transport.subscribe(topic)

    def wait_for(self, round_, wall_end):
        while min(self.seen.values()) < round_:
            assert time.time() < wall_end, "the broker never held round {}: {}".format(round_, self.seen)
            for e in self.transport.poll(0.05):
                if getattr(e, "topic", None) in self.seen and e.payload:
                    self.seen[e.topic] = max(self.seen[e.topic], self.decode(e.payload).round)


def test_every_agent_follows_the_servers_model_through_mosquitto(mosquitto, tmp_path,
                                                                random_delta):
    model = random_delta(3, 1.0)
    mqtt = MqttOptions(host=mosquitto.host, port=mosquitto.port, username="edgefl")
    agg = Announced(AggregatorConfig("dl", rounds=5, clients=CLIENTS, min_clients=2,
                                     deadline_s=3.0, downlink_codec="topk",
                                     downlink_options={"ratio": 0.1}), model)
    cores, threads = {}, []

    def agent(cid, run, clean=False, preload=True, **kw):
        core = Recording(AgentConfig("dl", cid))
        if preload:
            core.preload(model)
        cores[(cid, run)] = core
        opts = MqttOptions(**dict(mqtt.__dict__, clean_session=clean))
        transport = make_transport(cid, opts)

        def go():
            try:
                run_agent(core, transport, Noise(len(cores)), timeout=300, poll_s=0.05, **kw)
            finally:
                transport.close()
        t = threading.Thread(target=go)
        t.start()
        threads.append(t)

    for cid in ("a", "b"):
        agent(cid, 1)
    for cid in ("m-queue", "m-snapshot"):  # take part in round 1, then leave
        agent(cid, 1, max_rounds=1, state_path=str(tmp_path / cid))
    # The aggregator's clock is the test's: a round closes early only with all 5 clients, and at
    # its deadline when the test moves the clock, once the clients it must hold are in (a wall
    # clock deadline closed round 1 before slow agents had joined it, under load)
    clock, wall_end = [0.0], time.time() + 300  # the wall bound only ends a hang
    watcher = Watcher(mqtt)
    transport = make_transport("agg", mqtt)
    server = threading.Thread(target=serve_aggregator, args=(agg, transport), kwargs=dict(
        clock=lambda: clock[0], stop=lambda: time.time() > wall_end, poll_s=0.05))
    server.start()
    _deadline_once_in(agg, clock, {"a", "b", "m-queue", "m-snapshot"}, wall_end,
                      leaving=threads[2:])  # the two who leave are gone before round 2 opens
    _deadline_once_in(agg, clock, {"a", "b"}, wall_end)  # round 2 goes on without them
    watcher.wait_for(3, wall_end)  # what the two returning agents get is round 3's
    watcher.transport.close()
    agent("m-queue", 2, state_path=str(tmp_path / "m-queue"))  # its session kept the deltas
    agent("m-snapshot", 2, clean=True, state_path=str(tmp_path / "m-snapshot"))  # no session
    agent("late", 1, preload=False)  # no model, no state; rounds 3-5 wait for all five
    server.join(310)
    transport.close()
    for t in threads:
        t.join(310)

    assert agg.done and list(agg.announced) == [1, 2, 3, 4, 5, 6], agg.history
    for (cid, run), core in sorted(cores.items()):
        assert core.loaded, (cid, run)
        for round_, digest in core.loaded.items():
            assert digest == agg.announced[round_], (cid, run, round_)
    for cid, run in (("a", 1), ("b", 1), ("m-queue", 2), ("m-snapshot", 2), ("late", 1)):
        assert cores[(cid, run)].model_round == 6 and cores[(cid, run)].done, (cid, run)
        assert cores[(cid, run)].model_digest == agg.digest
    assert list(cores[("a", 1)].loaded) == [1, 2, 3, 4, 5, 6]
    assert list(cores[("m-queue", 1)].loaded) == [1]
    assert 2 in cores[("m-queue", 2)].loaded  # it chained the deltas queued while it was away...
    assert cores[("m-queue", 2)].received["snapshot"] == 0  # ...without the snapshot
    assert 2 not in cores[("m-snapshot", 2)].loaded  # no session: from round 1 to the snapshot
    assert cores[("m-snapshot", 2)].received["snapshot"] > 0
    assert min(cores[("late", 1)].loaded) >= 3 and cores[("late", 1)].received["snapshot"] > 0
    for h in agg.history:
        assert {"a", "b"} <= set(h["clients"])
    assert {"late", "m-queue", "m-snapshot"} <= set(agg.history[-1]["clients"])
    a = cores[("a", 1)]
    assert a.received["snapshot"] == 0
    assert a.received["round"] / 6.0 < agg.history[-1]["snapshot_bytes"] / 3.0
