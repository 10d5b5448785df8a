"""Group commit in the aggregator's loop: one save for the updates of a batch, and no status or
announcement published before the state that holds it is saved."""
import threading

import numpy as np

from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore
from edgefl.runtime.loops import serve_aggregator
from edgefl.runtime.state_store import StateStore
from edgefl.runtime.transport.memory import MemoryBroker, MemoryTransport
from edgefl.runtime.wire import decode_message

CLIENTS = ["a", "b", "c", "d", "e", "f"]


class Watching(MemoryTransport):
    """Records, for each status it publishes, whether the saved state already counted it."""

    def __init__(self, broker, client_id, saved):
        MemoryTransport.__init__(self, broker, client_id)
        self.saved, self.published = saved, []

    def publish(self, topic, payload, qos=1, retain=False):
        if "/status/" in topic:
            msg = decode_message(payload)
            self.published.append((msg.client_id, msg.params["accepted"], msg.client_id in self.saved))
        MemoryTransport.publish(self, topic, payload, qos, retain)


def _run(kit, small_model, tmp_path, commit_s, monkeypatch):
    saved, saves = set(), []
    real_save = StateStore.save

    def counting_save(store, core):
        real_save(store, core)
        saves.append(len(core.accepted))
        saved.update(c for c, _ in core.accepted)
        saved.update(c for h in core.history for c in h["clients"])

    monkeypatch.setattr(StateStore, "save", counting_save)
    tmp_path.mkdir()
    broker = MemoryBroker()
    cfg = AggregatorConfig("fed", rounds=1, min_clients=6, clients=CLIENTS)
    core = AggregatorCore(cfg, small_model)
    transport = Watching(broker, "agg", saved)
    ready = threading.Event()
    thread = threading.Thread(target=lambda: (serve_aggregator(
        core, transport, state_path=str(tmp_path / "state"), timeout=30, poll_s=0.05, commit_s=commit_s),
        ready.set()))
    thread.start()
    for _ in range(1000):
        if "edgefl/fed/round" in broker.retained:
            break
        threading.Event().wait(0.01)
    assert "edgefl/fed/round" in broker.retained, "the aggregator did not announce"
    sender = MemoryTransport(broker, "sender")
    sender.connect()
    ref = AggregatorCore(cfg, small_model)
    ref.start(0.0)
    for i, cid in enumerate(CLIENTS):  # all six queued at once: one poll batch
        topic, payload = kit.make_update(ref, cid, 0.1 * (i + 1))
        sender.publish(topic, payload, 1, False)
    thread.join(30)
    return core, transport.published, saves


def test_one_save_for_a_batch_and_nothing_published_before_it_is_saved(kit, small_model, tmp_path,
                                                                      monkeypatch):
    # Execute: the same six updates with a save per update, and grouped.
    each, each_published, each_saves = _run(kit, small_model, tmp_path / "each", 0.0, monkeypatch)
    grouped, published, saves = _run(kit, small_model, tmp_path / "grouped", 5.0, monkeypatch)
    # Assert: grouped, the six updates took one save (plus the start's); every "accepted" went out
    # after the save that holds it; the model is bitwise the same.
    assert each.done and grouped.done
    assert len(each_saves) >= 7 and len(saves) < len(each_saves)
    assert sorted(published) == sorted((c, True, True) for c in CLIENTS)
    assert sorted(each_published) == sorted((c, True, True) for c in CLIENTS)
    for n in small_model:
        assert np.array_equal(each.global_model[n], grouped.global_model[n])
