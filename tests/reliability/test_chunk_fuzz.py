"""The chunking layer under hostile chunks (in-memory broker twin): malformed, inconsistent,
duplicated, reordered and never-finished chunks never crash ``poll``, never produce a message
that was not sent whole, and pending state stays bounded; real chunked messages still arrive."""

import os
import struct

import numpy as np

from edgefl.runtime.transport.chunking import SEP, ChunkingTransport
from edgefl.runtime.transport.memory import MemoryBroker, MemoryTransport

HEADER = struct.Struct("<4s8sIIQ")


def _chunk(mid, index, count, total, body, magic=b"EFCK"):
    return HEADER.pack(magic, mid, index, count, total) + body


def test_hostile_chunks_never_crash_and_never_assemble_garbage():
    broker = MemoryBroker()
    receiver = ChunkingTransport(MemoryTransport(broker, "agg"), max_payload=256, max_pending=16)
    receiver.connect()
    receiver.subscribe("u/+", 1)
    raw = MemoryTransport(broker, "evil")
    raw.connect()
    sender = ChunkingTransport(MemoryTransport(broker, "good"), max_payload=256)
    sender.connect()
    rng = np.random.RandomState(0)
    genuine = [os.urandom(int(rng.randint(300, 3000))) for _ in range(20)]
    delivered = []
    for i in range(3000):
        mid, count = os.urandom(8), int(rng.randint(1, 6))
        kind = i % 8
        if kind == 0:  # header too short / garbage
            payload = os.urandom(int(rng.randint(0, HEADER.size)))
        elif kind == 1:  # bad magic, zero count, index beyond count, huge total
            payload = [
                _chunk(mid, 0, 1, 4, b"abcd", magic=b"XXXX"),
                _chunk(mid, 0, 0, 4, b"abcd"),
                _chunk(mid, 5, 2, 8, b"abcd"),
                _chunk(mid, 0, 2, 2**62, b"abcd"),
            ][i % 4]
        elif kind == 2:  # inconsistent counts/totals within one message id
            raw.publish("u/x" + SEP + "0", _chunk(mid, 0, count + 1, 100, b"a" * 50))
            payload = _chunk(mid, 1, count + 2, 100, b"b" * 50)
        elif kind == 3:  # complete, but the parts do not add up to the declared total
            raw.publish("u/x" + SEP + "0", _chunk(mid, 0, 2, 10, b"12345"))
            payload = _chunk(mid, 1, 2, 10, b"123456")
        elif kind == 4:  # started and never finished (fills the pending table)
            payload = _chunk(mid, 0, 1000, 10**6, b"x" * 100)
        elif kind == 5:  # duplicated and reordered chunks of a genuine message
            g = genuine[i % len(genuine)]
            size = 256 - HEADER.size
            parts = [g[j : j + size] for j in range(0, len(g), size)]
            order = list(rng.permutation(len(parts))) * 2
            for j in order[:-1]:
                raw.publish("u/y" + SEP + str(j), _chunk(mid, j, len(parts), len(g), parts[j]))
            payload = _chunk(mid, order[-1], len(parts), len(g), parts[order[-1]])
        elif kind == 6:  # a genuine message through the real chunking sender
            sender.publish("u/z", genuine[i % len(genuine)])
            payload = None
        else:  # random bytes on a chunk topic
            payload = os.urandom(int(rng.randint(HEADER.size, 400)))
        if payload is not None:
            raw.publish("u/x" + SEP + str(int(rng.randint(0, 5))), payload)
        delivered += [ev for ev in receiver.poll(0) if ev.kind == "message"]
        assert len(receiver._pending) <= 16
    genuine_set = set(genuine)
    assert delivered, "nothing delivered"
    assert all(ev.payload in genuine_set for ev in delivered)  # no garbage ever assembled
    assert sum(ev.topic == "u/z" for ev in delivered) == 3000 // 8  # every real chunked message
    assert receiver.dropped > 0
