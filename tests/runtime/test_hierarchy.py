"""Hierarchical FedAvg as pure state machines: regional aggregators fold their clients' updates
and send partials; the root merges them into bitwise the model of one flat aggregator."""
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult, marked_resend
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.regional import RegionalConfig, RegionalCore
from edgefl.runtime.signing import Keyring, generate_key, key_from_hex
from edgefl.runtime.wire import decode_message, encode_message

CLIENTS = ["c0", "c1", "c2", "c3", "c4", "c5"]
HOME = {"c0": "gs-a", "c1": "gs-a", "c2": "gs-a", "c3": "gs-b", "c4": "gs-b", "c5": "gs-b"}


def _config(**kw):
    base = dict(federation="fed", clients=CLIENTS, min_clients=6, rounds=2, stations=["gs-a", "gs-b"])
    base.update(kw)
    return AggregatorConfig(**base)


class Net(object):
    """Delivers the Publish actions of a root, its regional aggregators and agents by topic."""

    def __init__(self, root, regionals, now=1.0):
        self.root, self.regionals, self.now = root, regionals, now
        self.agents = OrderedDict((c, AgentCore(AgentConfig("fed", c))) for c in CLIENTS)
        self.statuses = []  # (client, round, accepted, reason) the agents got
        self.updates = []  # every (topic, payload) an agent sent
        self.cut = set()  # stations the root's announcements do not reach now...
        self.withheld = []  # ...and what they missed

    def deliver(self, actions):
        queue = [a for a in actions if isinstance(a, Publish)]
        while queue:
            a = queue.pop(0)
            parts = a.topic.split("/")
            kind = parts[2]
            if kind in ("partial", "forward"):
                queue += [x for x in self.root.on_message(a.topic, a.payload, self.now)
                          if isinstance(x, Publish)]
            elif kind == "partial-status":
                queue += self._to(self.regionals[parts[3]], a)
            elif kind == "round" and a.payload:
                for station, r in self.regionals.items():
                    if station in self.cut:
                        self.withheld.append((station, a))
                    else:
                        queue += self._to(r, a)
                self.announcement = a
            elif kind == "status":
                msg = decode_message(a.payload)
                self.statuses.append((parts[3], msg.round, msg.params["accepted"],
                                      msg.params.get("reason", "")))
                self.agents[parts[3]].on_message(a.topic, a.payload)

    def _to(self, regional, a):
        return [x for x in regional.on_message(a.topic, a.payload, self.now) if isinstance(x, Publish)]

    def train(self, cid, shift):
        agent = self.agents[cid]
        job = agent.on_message(self.announcement.topic, self.announcement.payload)
        local = OrderedDict((k, v + np.float32(shift) * (1 + 0.1 * v)) for k, v in job.global_model.items())
        update = agent.on_trained(job, TrainResult(local, 10 + 7 * CLIENTS.index(cid), {"loss": shift}))
        self.updates.append(update)
        return update

    def send(self, station, update):
        self.deliver(self.regionals[station].on_message(update[0], update[1], self.now))

    def tick(self, now):
        self.now = now
        for r in self.regionals.values():
            self.deliver(r.tick(now))


def _network(small_model, partial_updates=2, **kw):
    root = AggregatorCore(_config(**kw), small_model)
    regionals = OrderedDict((s, RegionalCore(RegionalConfig("fed", s, partial_updates=partial_updates)))
                            for s in ("gs-a", "gs-b"))
    net = Net(root, regionals)
    net.deliver(root.start(0.0))
    return net


def _flat(small_model, updates, rounds):
    """One aggregator given the same updates (round by round, in the order given)."""
    flat = AggregatorCore(AggregatorConfig("fed", clients=CLIENTS, min_clients=6, rounds=rounds), small_model)
    flat.start(0.0)
    for topic, payload in updates:
        flat.on_message(topic, payload, 1.0)
    return flat


def _bitwise_flat(root, small_model, updates, rounds=1):
    """Whether the root's model is bitwise the flat aggregator's on ``updates``."""
    flat = _flat(small_model, updates, rounds)
    return all(root.global_model[n].tobytes() == flat.global_model[n].tobytes() for n in small_model)


def test_two_stations_give_bitwise_the_flat_model(small_model):
    # Prepare: two rounds; three clients per station; a partial every two updates, the rest
    # sent when the interval passes.
    net = _network(small_model)
    shifts = {c: 0.1 * (i + 1) * (-1) ** i for i, c in enumerate(CLIENTS)}
    # Execute
    for rnd in (1, 2):
        for cid in CLIENTS:
            net.send(HOME[cid], net.train(cid, shifts[cid] * rnd))
        net.tick(10.0 * rnd)
    # Assert: both rounds closed with every client; every client was told "accepted" by the root;
    # the model is bitwise the flat aggregator's given the same updates in another order.
    root = net.root
    assert root.done and [h["clients"] for h in root.history] == [CLIENTS, CLIENTS]
    told = sorted((c, r) for c, r, ok, _ in net.statuses if ok)
    assert told == sorted((c, r) for c in CLIENTS for r in (1, 2))
    by_round = sorted(net.updates, key=lambda u: (decode_message(u[1]).round, u[0]), reverse=False)
    assert _bitwise_flat(root, small_model, by_round, rounds=2)
    assert [len(r.sent) for r in net.regionals.values()] == [4, 4]  # 2 + 1 per round each


def test_a_resend_at_another_station_is_counted_once(small_model):
    # Prepare: c0's first copy is folded at gs-a but not sent yet (its status cannot have come).
    net = _network(small_model, partial_updates=10)
    first = net.train("c0", 0.5)
    net.send("gs-a", first)
    # Execute: c0 passes over gs-b and resends; gs-b forwards it; then gs-a's partial arrives.
    net.send("gs-b", (first[0], marked_resend(first[1])))
    assert ("c0", 1) in net.root.buffered  # kept, not folded
    for cid in CLIENTS[1:]:
        net.send(HOME[cid], net.train(cid, 0.25))
    net.tick(5.0)
    # Assert: the round closed with six clients; the kept copy was dropped for the partial's,
    # so the model is the flat one (c0 once).
    root = net.root
    assert root.round == 2 and root.history[0]["clients"] == CLIENTS and not root.buffered
    assert _bitwise_flat(root, small_model, net.updates)


def test_a_resend_no_partial_holds_is_folded_at_the_close(small_model):
    # Prepare: c0's first copy never reached a station (its status never came back).
    net = _network(small_model, partial_updates=10)
    first = net.train("c0", 0.5)
    # Execute: it resends through gs-b; the others go as usual.
    net.send("gs-b", (first[0], marked_resend(first[1])))
    for cid in CLIENTS[1:]:
        net.send(HOME[cid], net.train(cid, 0.25))
    net.tick(5.0)
    # Assert: c0 counted (from the kept resend) and the model is the flat one.
    assert net.root.history[0]["clients"] == CLIENTS
    assert _bitwise_flat(net.root, small_model, net.updates)


def test_unsent_updates_of_a_closed_round_are_refused_with_the_reason(small_model):
    # Prepare: the root closes round 1 at its deadline with gs-b's three; gs-a holds c0 unsent.
    net = _network(small_model, partial_updates=10, min_clients=3, deadline_s=5.0)
    net.send("gs-a", net.train("c0", 0.5))
    for cid in ("c3", "c4", "c5"):
        net.send("gs-b", net.train(cid, 0.25))
    net.tick(3.0)  # the interval (2 s) passed: both stations send their partial
    # Execute: gs-a's partial is merged too; a new c1 update sits unsent when round 2 opens.
    net.send("gs-a", net.train("c1", 0.5))
    net.deliver(net.root.tick(6.0))
    # Assert: round 1 had c0 and gs-b's clients; c1 was told its round closed without it.
    assert net.root.history[0]["clients"] == ["c0", "c3", "c4", "c5"]
    assert ("c1", 1, False) in [s[:3] for s in net.statuses]
    reason = [s[3] for s in net.statuses if s[0] == "c1"][0]
    assert reason.startswith("stale-round: round 1 closed before station gs-a sent it"), reason


def _signed_network(small_model):
    keys = {s: generate_key() for s in ("gs-a", "gs-b")}
    net = _network(small_model, partial_updates=3)
    net.root.keyring = Keyring.from_hex(keys)
    for s, r in net.regionals.items():
        r.station_key = key_from_hex(keys[s])
    return net, keys


def test_partials_are_signed_and_a_forged_one_is_refused(small_model):
    # Prepare: the root holds the stations' keys; gs-b signs with the wrong one.
    net, _ = _signed_network(small_model)
    net.regionals["gs-b"].station_key = key_from_hex(generate_key())
    statuses = []
    net.regionals["gs-b"].on_message = _spy(net.regionals["gs-b"].on_message, statuses)
    # Execute
    for cid in CLIENTS:
        net.send(HOME[cid], net.train(cid, 0.25))
    # Assert: gs-a's partial merged, gs-b's refused and gs-b told why; its clients are told
    # nothing (a forged partial must not make the root reject clients' updates: they resend).
    root = net.root
    assert sorted(c for c, _ in root.accepted) == ["c0", "c1", "c2"]
    assert not [s for s in net.statuses if not s[2]] and root.rejections == {"partial": 1}
    (refusal,) = [decode_message(p).params for t, p in statuses if "/partial-status/" in t]
    assert not refusal["accepted"] and refusal["reason"] == "partial: signature: bad signature"


def _spy(on_message, seen):
    def spying(topic, payload, now):
        seen.append((topic, payload))
        return on_message(topic, payload, now)
    return spying


def test_a_partial_for_another_round_or_overlapping_is_refused(small_model):
    # Prepare: gs-a sends c0..c2 in round 1.
    net = _network(small_model, partial_updates=3)
    for cid in ("c0", "c1", "c2"):
        net.send("gs-a", net.train(cid, 0.25))
    assert net.regionals["gs-a"].sent == [(1, 0, ["c0", "c1", "c2"])]
    # Execute: the same contributors again under a new sequence number (a faulty station).
    msg = decode_message(net.last_partial)
    msg.params["seq"] = 7
    actions = net.root.on_message("edgefl/fed/partial/gs-a", encode_message(msg), 2.0)
    # Assert: refused as an overlap; the root's state is unchanged.
    (ack,) = [a for a in actions if a.topic.endswith("/partial-status/gs-a")]
    reason = decode_message(ack.payload).params["reason"]
    assert reason.startswith("overlap: already counted: c0, c1, c2"), reason
    assert sorted(c for c, _ in net.root.accepted) == ["c0", "c1", "c2"]
    assert net.root.fold.count == 3


@pytest.fixture(autouse=True)
def _keep_partials(monkeypatch):
    """Net remembers the last partial the root received (for replay tests)."""
    deliver = Net.deliver

    def remembering(self, actions):
        for a in actions:
            if isinstance(a, Publish) and "/partial/" in a.topic:
                self.last_partial = a.payload
        return deliver(self, actions)

    monkeypatch.setattr(Net, "deliver", remembering)


@pytest.mark.parametrize("change,why", [
    (dict(strategy="median"), "needs strategy fedavg"),
    (dict(mode="async"), "sync rounds only"),
    (dict(clients=[], min_clients=1), "needs the federation's clients list"),
])
def test_what_does_not_decompose_is_refused_with_the_reason(change, why):
    with pytest.raises(EdgeRuntimeError, match=why):
        _config(**change).check()


def test_a_regional_aggregator_restarted_from_its_state_loses_nothing(small_model):
    # Prepare: gs-a folded c0 and c1 (not sent), then "kill -9": only its state survives.
    net = _network(small_model, partial_updates=3)
    for cid in ("c0", "c1"):
        net.send("gs-a", net.train(cid, 0.5))
    blob = net.regionals["gs-a"].to_bytes()
    fresh = RegionalCore(RegionalConfig("fed", "gs-a", partial_updates=3))
    fresh.restore(blob)
    net.regionals["gs-a"] = fresh
    # Execute: the rest of the round.
    for cid in CLIENTS[2:]:
        net.send(HOME[cid], net.train(cid, 0.25))
    net.tick(5.0)
    # Assert: all six counted, bitwise the flat model.
    assert net.root.history[0]["clients"] == CLIENTS
    assert _bitwise_flat(net.root, small_model, net.updates)


def test_an_update_that_overtakes_its_announcement_at_a_station_is_held_and_counted(small_model):
    # Prepare: round 1 as usual, except that the announcement of round 2 does not reach gs-a yet.
    net = _network(small_model, partial_updates=1)
    for cid in CLIENTS[:-1]:
        net.send(HOME[cid], net.train(cid, 0.25))
    net.cut = {"gs-a"}
    net.send(HOME[CLIENTS[-1]], net.train(CLIENTS[-1], 0.25))
    assert net.root.round == 2 and net.regionals["gs-a"].current.round == 1
    # Execute: c0 learnt of round 2 elsewhere and sends its update to gs-a first; then the
    # announcement arrives there, and the others send theirs.
    net.send("gs-a", net.train("c0", 0.5))
    net.cut = set()
    for station, a in net.withheld:
        net.deliver(net._to(net.regionals[station], a))
    for cid in CLIENTS[1:]:
        net.send(HOME[cid], net.train(cid, 0.5))
    net.tick(10.0)
    # Assert: nobody was refused; round 2 closed with all six, bitwise the flat model.
    assert not [s for s in net.statuses if not s[2]]
    assert [h["clients"] for h in net.root.history] == [CLIENTS, CLIENTS]
    by_round = sorted(net.updates, key=lambda u: decode_message(u[1]).round)
    assert _bitwise_flat(net.root, small_model, by_round, rounds=2)


def test_a_failure_after_the_close_committed_takes_nothing_out_of_the_next_round(small_model,
                                                                                 monkeypatch):
    # Prepare: the root's announcement of round 2 fails once, after round 1 (closed by a
    # merged partial) was committed.
    net = _network(small_model)
    real, calls = AggregatorCore._announcements, []

    def failing(core, final=False):
        if core is net.root and core.round == 2 and not calls:
            calls.append(core.round)
            raise RuntimeError("the announcement failed once")
        return real(core, final)

    monkeypatch.setattr(AggregatorCore, "_announcements", failing)
    # Execute
    for cid in CLIENTS:
        net.send(HOME[cid], net.train(cid, 0.1))
    net.tick(10.0)
    # Assert: round 1 is committed with every client; the partial that closed it was not taken
    # out of round 2's fold (which would start round 2 from minus that partial).
    root = net.root
    assert calls == [2] and [h["clients"] for h in root.history] == [CLIENTS]
    assert root.round == 2 and (root.fold.count, root.fold.weight) == (0, 0)
    assert root.fold.sums is None or not any(np.any(a) for a in root.fold.sums.values())
