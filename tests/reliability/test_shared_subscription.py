"""Several aggregator workers split one update stream through a shared subscription
(``$share/GROUP/edgefl/FED/update/+``) on one real Mosquitto 2, as on a clustered broker: the
root takes its share of the updates directly, a regional aggregator on the same broker
("worker" w1, listed in the root's ``stations``) takes the rest and sends partial sums to the
root. Each update is taken once and the model is bitwise the flat run's (README "Clustered
brokers")."""

from __future__ import annotations

import threading

from edgefl.runtime.regional import RegionalConfig, RegionalCore

CLIENTS = ["c0", "c1", "c2", "c3", "c4", "c5"]
GROUP = "aggs"


class Worker:
    """A regional aggregator in the shared group, in a thread (the runtime's loop)."""

    def __init__(self, station: str, mqtt: dict):
        from edgefl.runtime.config import make_transport
        from edgefl.runtime.loops import serve_regional

        self.core = RegionalCore(RegionalConfig("rel", station, share_group=GROUP, partial_updates=2,
                                                partial_interval_s=0.3))
        self._stop = False
        self.transport = make_transport("worker-" + station, mqtt)
        self.thread = threading.Thread(target=serve_regional, args=(self.core, self.transport), kwargs=dict(
            stop=lambda: self._stop, timeout=300, poll_s=0.02), daemon=True)
        self.thread.start()

    def stop(self):
        self._stop = True
        self.thread.join(10)
        self.transport.close()


def test_workers_on_a_shared_subscription_split_the_updates_and_give_the_flat_model(broker, live, flkit):
    # Prepare: 2 rounds of six clients; the root and worker w1 both subscribe to the updates
    # through the group "aggs", so Mosquitto hands each update to one of them.
    mqtt = {"host": "127.0.0.1", "port": broker.port, "keepalive": 5}
    common = dict(federation="rel", clients=CLIENTS, min_clients=6, rounds=2, deadline_s=600.0)
    root = live.aggregator(flkit.aggregator_config(**common, stations=["w1"], share_group=GROUP),
                           flkit.init_model())
    worker = Worker("w1", mqtt)
    agents = [live.agent(cid) for cid in CLIENTS]
    expected = flkit.reference_run(flkit.aggregator_config(**common), flkit.init_model(), [CLIENTS] * 2)
    try:
        # Execute: every client trains on each round's announcement and sends its update once.
        for r in (1, 2):
            for a in agents:
                a.publish(a.train(a.job(r)))
            for a in agents:
                assert a.status(r)[:2] == (r, True), a.client_id
        root.join(timeout=120)
    finally:
        worker.stop()
    # Assert: both rounds closed with all six; the worker's partials and the root's own share
    # add up to each round's clients with no update taken twice, and both had a share; the
    # model is bitwise the flat aggregator's on the same updates.
    assert [h["clients"] for h in root.core.history] == [CLIENTS] * 2
    by_worker = {r: [c for rnd, _, contributors in worker.core.sent if rnd == r for c in contributors]
                 for r in (1, 2)}
    assert all(len(set(cs)) == len(cs) and set(cs) <= set(CLIENTS) for cs in by_worker.values())
    assert 0 < sum(len(cs) for cs in by_worker.values()) < 2 * len(CLIENTS)
    assert flkit.models_equal(root.core.global_model, expected.global_model)
