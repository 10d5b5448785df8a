"""Topic matching, the in-memory broker and chunking with reassembly."""
import numpy as np

from edgefl.runtime.transport import Topics, topic_matches
from edgefl.runtime.transport.chunking import ChunkingTransport
from edgefl.runtime.transport.memory import MemoryBroker, MemoryTransport


def test_topic_matching():
    assert topic_matches("edgefl/f/update/+", "edgefl/f/update/a")
    assert not topic_matches("edgefl/f/update/+", "edgefl/f/update/a/b")
    assert topic_matches("edgefl/#", "edgefl/f/round")
    assert not topic_matches("edgefl/f/round", "edgefl/f/round/x")
    t = Topics("f")
    assert t.client_from_update_topic("edgefl/f/update/sat-1") == "sat-1"
    assert t.client_from_update_topic("edgefl/f/update/a/~chunk/0") is None


def test_chunked_retained_message_reaches_a_late_subscriber():
    broker = MemoryBroker(max_payload=1000)
    pub = ChunkingTransport(MemoryTransport(broker, "pub"), max_payload=1000)
    pub.connect()
    big = np.random.RandomState(0).bytes(25000)
    pub.publish("edgefl/f/round", big, qos=1, retain=True)
    assert max(n for _, _, n in broker.published) <= 1000
    sub = ChunkingTransport(MemoryTransport(broker, "sub"), max_payload=1000)
    sub.connect()
    sub.subscribe("edgefl/f/round")
    msgs = [e for e in sub.poll() if e.kind == "message"]
    assert [(e.topic, e.payload) for e in msgs] == [("edgefl/f/round", big)]
    pub.publish("edgefl/f/round", b"small", qos=1, retain=True)  # stale chunks are cleared
    late = ChunkingTransport(MemoryTransport(broker, "late"), max_payload=1000)
    late.connect()
    late.subscribe("edgefl/f/round")
    assert [e.payload for e in late.poll() if e.kind == "message" and e.payload] == [b"small"]


def test_chunk_garbage_is_dropped_not_raised():
    broker = MemoryBroker()
    raw = MemoryTransport(broker, "evil")
    raw.connect()
    sub = ChunkingTransport(MemoryTransport(broker, "sub"), max_payload=100)
    sub.connect()
    sub.subscribe("edgefl/f/update/+")
    raw.publish("edgefl/f/update/x/~chunk/0", b"EFCK" + b"\0" * 30)
    raw.publish("edgefl/f/update/x/~chunk/1", b"short")
    assert [e for e in sub.poll() if e.kind == "message"] == []
    assert sub.dropped >= 1


def test_persistent_session_queues_qos1_only():
    broker = MemoryBroker()
    a = MemoryTransport(broker, "a")
    a.connect()
    a.subscribe("t/#", qos=1)
    a.close()
    p = MemoryTransport(broker, "p")
    p.connect()
    p.publish("t/1", b"q1", qos=1)
    p.publish("t/0", b"q0", qos=0)
    a.connect()
    assert [e.payload for e in a.poll() if e.kind == "message"] == [b"q1"]


def test_wait_connected_keeps_messages_that_arrive_with_the_connection():
    from edgefl.runtime.loops import wait_connected
    from edgefl.runtime.transport import Event

    class Burst(object):
        def __init__(self):
            self.batches = [[Event("message", "a", b"1"), Event("connected"),
                             Event("message", "b", b"2")]]

        def poll(self, timeout=0.0):
            return self.batches.pop(0) if self.batches else []

    assert [e.topic for e in wait_connected(Burst(), timeout=1.0)] == ["a", "b"]
