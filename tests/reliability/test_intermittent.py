"""Intermittent contact: an agent that drops out for several rounds comes back, gets the
current global model, and the update it computed before it left is rejected with a reason
(sync) or weighted by its staleness (async, FedBuff) — never silently mixed in."""

from collections import OrderedDict

import numpy as np

from edgefl.runtime import strategies
from edgefl.runtime.aggregator import AggregatorCore
from edgefl.runtime.wire import decode_message, model_digest


def test_sync_stale_update_is_rejected_with_a_reason_and_the_agent_rejoins(live, flkit):
    clients = ["c0", "c1", "c2", "c3"]
    cfg = flkit.aggregator_config(federation="rel", clients=clients, min_clients=3, rounds=4, deadline_s=2.5)
    expected = flkit.reference_run(cfg, flkit.init_model(), [clients[:3], clients[:3], clients, clients])
    agg = live.aggregator(cfg, flkit.init_model())
    agents = {cid: live.agent(cid) for cid in clients}
    regulars = [agents[c] for c in clients[:3]]
    sat = agents["c3"]

    # Round 1: the satellite trains, then loses contact before it can send.
    stale = sat.train(sat.job(1))
    sat.disconnect()
    for rnd in (1, 2):  # rounds 1 and 2 close at their deadline with the quorum of 3
        for a in regulars:
            a.publish(a.train(a.job(rnd)))
        if rnd == 2:  # back in contact during round 2: its queued stale update goes out first
            sat.connect()
            sat.publish(stale)
            assert sat.status(1)[:2] == (1, False)
            reason = sat.status(1)[2]
        agg.wait_round(rnd + 1)

    # Round 3: it trains on the current global model.
    job = sat.job(3)
    assert model_digest(job.global_model) == agg.core.digest  # it got the current global model
    sat.publish(sat.train(job))
    assert sat.status(2) == (3, True, "")
    for rnd in (3, 4):
        for a in regulars + ([sat] if rnd == 4 else []):
            a.publish(a.train(a.job(rnd)))
    agg.join()

    # Assert: reason named, rounds 1-2 without c3, 3-4 with it, model = reference without the
    # stale update, and the rejection was logged.
    assert reason.startswith("stale-round: update for round 1, current round is "), reason
    assert [h["clients"] for h in agg.core.history] == [clients[:3], clients[:3], clients, clients]
    assert flkit.models_equal(agg.core.global_model, expected.global_model)
    assert any("rejected update on edgefl/rel/update/c3" in text for _, text in agg.lines)


def _delta(payload, shapes):
    msg = decode_message(payload)
    return msg, OrderedDict((n, np.array(msg.tensors[n], np.float32)) for n in shapes)


def test_async_stale_update_is_weighted_by_staleness_and_too_stale_is_rejected(live, flkit):
    clients = ["c0", "c1", "c2", "c3", "c4"]
    cfg = flkit.aggregator_config(
        federation="rel",
        mode="async",
        clients=clients,
        buffer_size=3,
        max_staleness=2,
        rounds=4,
        deadline_s=60.0,
    )
    agg = live.aggregator(cfg, flkit.init_model())
    agents = {cid: live.agent(cid) for cid in clients}
    c0, c1, c2, c3, c4 = (agents[c] for c in clients)

    # Version 1: c3 and c4 train on it, then both drop out of contact.
    held = {a.client_id: a.train(a.job(1)) for a in (c3, c4)}
    c3.disconnect()
    c4.disconnect()
    for v in (1, 2):
        for a in (c0, c1, c2):
            a.publish(a.train(a.job(v)))
        agg.wait_round(v + 1)
    # Version 3: c0, c1 fresh; c3 comes back and sends its version-1 update (staleness 2).
    v3_model = OrderedDict((n, np.array(v)) for n, v in agg.core.global_model.items())
    for a in (c0, c1):
        a.publish(a.train(a.job(3)))
    c3.connect()
    c3.publish(held["c3"])
    assert c3.status(1) == (1, True, "")
    agg.wait_round(4)
    v4_model = OrderedDict((n, np.array(v)) for n, v in agg.core.global_model.items())
    # Version 4: c4 comes back with a version-1 update (staleness 3 > 2): rejected with a reason.
    c4.connect()
    c4.publish(held["c4"])
    rnd, accepted, reason = c4.status(1)
    assert (rnd, accepted) == (1, False) and reason.split(":")[0] == "base-digest", reason
    job = c4.job(4)
    assert flkit.models_equal(job.global_model, v4_model)  # it got the current global model
    for a in (c4, c3, c0):
        a.publish(a.train(a.job(4)))
    agg.join()

    # Assert: version 4 = version 3 + FedBuff of (c0, c1 at staleness 0, c3 at staleness 2),
    # weighted 1/sqrt(1+tau); mixing c3 in at full weight would give a different model.
    shapes = list(flkit.SHAPES)
    ups = []
    for agent, tau in ((c0, 0), (c1, 0), (c3, 2)):
        msg, delta = _delta([p for t, p in agent.sent if decode_message(p).round == 3 - tau][0], shapes)
        ups.append(strategies.ClientUpdate(agent.client_id, msg.num_examples, delta, tau))

    def apply(updates):
        d = strategies.fedbuff(updates, "inv_sqrt_1p")
        return OrderedDict(
            (n, (v3_model[n].astype(np.float64) + d[n].astype(np.float64)).astype(np.float32)) for n in shapes
        )

    # (the aggregator sums exactly on a fixed-point grid: within 1e-6 of the float64 sums)
    def gap(model):
        return max(float(np.max(np.abs(v4_model[n] - model[n]))) for n in shapes)

    assert gap(apply(ups)) <= 1e-6
    assert gap(apply([u._replace(staleness=0) for u in ups])) > 1e-3
    assert [h["clients"] for h in agg.core.history] == [["c0", "c1", "c2"]] * 2 + [
        ["c0", "c1", "c3"],
        ["c0", "c3", "c4"],
    ]
    assert agg.core.rejections == {"base-digest": 1}
    # Replaying exactly the accepted messages into a fresh core gives the same final model.
    replay = AggregatorCore(cfg, flkit.init_model())
    replay.start(0.0)
    order = [(a, v) for v in (1, 2) for a in (c0, c1, c2)] + [
        (c0, 3),
        (c1, 3),
        (c3, 1),
        (c4, 4),
        (c3, 4),
        (c0, 4),
    ]
    for agent, v in order:
        topic, payload = [u for u in agent.sent if decode_message(u[1]).round == v][-1]
        replay.on_message(topic, payload, 0.0)
    assert flkit.models_equal(replay.global_model, agg.core.global_model)
