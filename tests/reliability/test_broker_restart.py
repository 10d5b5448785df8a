"""Mosquitto restarts (persistence on) in the middle of a round: the aggregator and agents
reconnect, the round completes, nothing is lost; QoS 1 messages for an offline client are
delivered when it reconnects, even across a broker restart (persistent sessions)."""

import time

import pytest

from edgefl.runtime.loops import wait_connected
from edgefl.runtime.transport import Topics
from edgefl.runtime.transport.paho_mqtt import MqttOptions, PahoTransport

CLIENTS = ["c0", "c1", "c2", "c3"]


@pytest.mark.slow
def test_round_completes_across_a_broker_restart(fedrun, flkit, broker, wait):
    # Prepare: c2 and c3 are still training when the broker goes down.
    agg = dict(federation="rel", clients=CLIENTS, min_clients=4, rounds=2, deadline_s=60.0)
    expected = flkit.reference_run(flkit.aggregator_config(**agg), flkit.init_model(), [CLIENTS] * 2)
    aggregator = fedrun.start_aggregator(agg)
    for cid in CLIENTS:
        fedrun.start_agent(cid, delays={"1": 2.0} if cid in ("c2", "c3") else {})
    wait(lambda: fedrun.training_started("c2") and fedrun.training_started("c3"), 120, "slow agents training")
    wait(
        lambda: getattr(fedrun.state(), "accepted", None) and fedrun.state().round == 1,
        120,
        "round 1 half done",
    )

    # Execute: stop the broker; c2/c3 finish training and publish while it is down (their
    # client queues the QoS 1 publish); restart it 3 s later.
    broker.stop()
    time.sleep(3.0)
    broker.start()
    assert fedrun.wait_exit(aggregator) == 0, fedrun.log("aggregator")

    # Assert: both rounds closed with all four clients; the model is the uninterrupted run's.
    state = fedrun.state()
    assert [h["clients"] for h in state.history] == [CLIENTS, CLIENTS]
    final, _ = fedrun.final_model()
    assert flkit.models_equal(final, expected.global_model)


def _collect(transport, n, timeout=60.0):  # returns as soon as n arrived: the timeout bounds a hang
    got, end = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < end:
        got += [(e.topic, e.payload) for e in transport.poll(0.1) if e.kind == "message"]
    return got


@pytest.mark.parametrize("how", ["graceful", "kill9"])
def test_qos1_messages_queued_for_an_offline_client_survive_a_broker_restart(broker_factory, how):
    # kill -9 keeps only what is on disk: that broker saves after every change
    broker = broker_factory(save_every_change=how == "kill9")
    topics = Topics("rel")
    opts = MqttOptions(host="127.0.0.1", port=broker.port, keepalive=5)
    # Prepare: the satellite subscribes with its stable id, then goes out of contact.
    sat = PahoTransport("sat-7", opts)
    sat.subscribe(topics.status("sat-7"), 1)
    sat.connect()
    wait_connected(sat, 60)
    sat.close()
    # Execute: the aggregator sends 5 QoS 1 messages while it is away; the broker restarts.
    agg = PahoTransport("aggregator", opts)
    agg.connect()
    wait_connected(agg, 60)
    sent = [b"status %d" % i for i in range(5)]
    for payload in sent:
        agg.publish(topics.status("sat-7"), payload, qos=1)
    assert agg.flush(60)
    agg.close()
    if how == "kill9":  # kill -9 once they are on disk, not merely acknowledged
        broker.wait_persisted(sent)
    broker.restart(kill=how == "kill9")
    sat = PahoTransport("sat-7", opts)
    sat.subscribe(topics.status("sat-7"), 1)
    sat.connect()
    try:
        got = _collect(sat, len(sent))
    finally:
        sat.close()
    # Assert: every message arrives, once, in order.
    assert got == [(topics.status("sat-7"), p) for p in sent]
