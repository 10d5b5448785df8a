"""Topic matching, the in-memory broker and chunking with reassembly (bounded)."""
import struct

import numpy as np

from edgefl.runtime.transport import Topics, topic_matches
from edgefl.runtime.transport.chunking import SEP, ChunkingTransport
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


HEADER = struct.Struct("<4s8sIIQ")


def _chunk(mid, index, count, total, body):
    return HEADER.pack(b"EFCK", mid, index, count, total) + body


class _Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _bounded_receiver(**limits):
    broker = MemoryBroker()
    receiver = ChunkingTransport(MemoryTransport(broker, "agg"), max_payload=1024, **limits)
    receiver.connect()
    receiver.subscribe("u/+", 1)
    raw = MemoryTransport(broker, "evil")
    raw.connect()
    return receiver, raw


def _held(receiver):
    """Bytes of chunk data held for partial messages."""
    return sum(len(p) for s in receiver._pending.values() for p in s.parts.values())


def test_chunk_streams_over_the_declared_limits_are_dropped_with_a_reason():
    receiver, raw = _bounded_receiver(max_message=4096, max_parts=8)
    raw.publish("u/a" + SEP + "0", _chunk(b"m1", 0, 2, 4097, b"x" * 10))  # total > max_message
    raw.publish("u/a" + SEP + "0", _chunk(b"m2", 0, 9, 4000, b"x" * 10))  # count > max_parts
    raw.publish("u/a" + SEP + "0", _chunk(b"m3", 0, 2, 100, b"x" * 60))  # parts add up to more
    raw.publish("u/a" + SEP + "1", _chunk(b"m3", 1, 2, 100, b"x" * 60))
    assert [e for e in receiver.poll() if e.kind == "message"] == []
    assert receiver.drops == {"over-limit": 2, "overflow": 1} and not receiver._pending
    assert [line[1].split(" (")[1].split(")")[0] for line in receiver.log] == [
        "over-limit", "over-limit", "overflow"]


def test_a_flood_under_one_message_id_holds_at_most_the_declared_message():
    # Prepare: 100 MiB of 64 KiB chunks under one id that declares 1 MiB, then a genuine
    # chunked message from another sender.
    receiver, raw = _bounded_receiver(max_message=1 << 20)
    body = b"x" * (64 * 1024)
    peak = 0
    for i in range(1600):
        raw.publish("u/evil" + SEP + str(i % 16), _chunk(b"flood", i % 16, 16, 1 << 20, body))
        raw.publish("u/evil" + SEP + "0", _chunk(b"flood", i % 17, 17, 1 << 20, body))
        receiver.poll()
        peak = max(peak, _held(receiver))
    sender = ChunkingTransport(MemoryTransport(raw.broker, "good"), max_payload=1024)
    sender.connect()
    genuine = np.random.RandomState(1).bytes(5000)
    sender.publish("u/good", genuine)
    # Assert: never more than the declared megabyte held; the genuine message arrives.
    assert peak <= 1 << 20
    assert [e.payload for e in receiver.poll() if e.kind == "message"] == [genuine]


def test_a_senders_new_stream_evicts_its_old_one_and_pending_bytes_stay_bounded():
    receiver, raw = _bounded_receiver(max_message=1000, max_parts=4, max_pending_bytes=20000)
    raw.publish("u/a" + SEP + "0", _chunk(b"a1aaaaaa", 0, 4, 1000, b"x" * 250))
    raw.publish("u/b" + SEP + "0", _chunk(b"b1bbbbbb", 0, 4, 1000, b"x" * 250))
    raw.publish("u/a" + SEP + "0", _chunk(b"a2aaaaaa", 0, 4, 1000, b"x" * 250))  # a's second stream
    receiver.poll()
    assert sorted(k[1] for k in receiver._pending) == [b"a2aaaaaa", b"b1bbbbbb"]
    assert receiver.drops == {"sender-buffer": 1}
    for i in range(40):  # many senders: the oldest streams go first
        raw.publish("u/s%d" % i + SEP + "0", _chunk(b"ssssssss", 0, 4, 1000, b"x" * 250))
        receiver.poll()
        assert receiver.pending_bytes <= 20000
    assert receiver.drops["buffer-full"] > 0 and (("u/s39", b"ssssssss") in receiver._pending)


def test_a_stalled_stream_is_dropped_after_the_timeout():
    clock = _Clock()
    receiver, raw = _bounded_receiver(timeout_s=30.0, clock=clock)
    raw.publish("u/a" + SEP + "0", _chunk(b"m", 0, 2, 10, b"12345"))
    receiver.poll()
    clock.now = 29.0
    assert receiver.poll() == [] and len(receiver._pending) == 1
    clock.now = 31.0
    receiver.poll()
    assert not receiver._pending and receiver.drops == {"timeout": 1}
    assert "timeout" in receiver.log[-1][1]
