"""Split payloads above a size limit into chunks and reassemble them (any transport).

A payload larger than ``max_payload`` goes out as N chunks on ``{topic}/~chunk/{i}`` (retained
too when the payload is retained, so a late subscriber finds every chunk). Each chunk starts
with a 28-byte header: magic ``EFCK``, an 8-byte message id, index, count (uint32) and total
length (uint64). Chunks are idempotent: a duplicate overwrites itself. Incomplete messages are
evicted oldest-first beyond ``max_pending``.
"""

import os
import struct
from collections import OrderedDict

from edgefl.runtime.transport import Event, Transport

_HEADER = struct.Struct("<4s8sIIQ")
_MAGIC = b"EFCK"
SEP = "/~chunk/"


class ChunkingTransport(Transport):
    """Wraps another transport; payloads above ``max_payload`` bytes are chunked."""

    def __init__(self, inner, max_payload=1024 * 1024, max_message=1 << 30, max_pending=64):
        if max_payload <= _HEADER.size:
            raise ValueError("max_payload must exceed the {}-byte chunk header".format(
                _HEADER.size))
        self.inner, self.max_payload = inner, max_payload
        self.max_message, self.max_pending = max_message, max_pending
        self.client_id = inner.client_id
        self._pending = OrderedDict()  # (topic, id) -> {index: bytes}, count, total
        self._retained_chunks = {}
        self.dropped = 0

    def connect(self):
        self.inner.connect()

    def subscribe(self, topic_filter, qos=1):
        self.inner.subscribe(topic_filter, qos)
        if not topic_filter.endswith("#"):
            self.inner.subscribe(topic_filter + SEP + "+", qos)

    def publish(self, topic, payload, qos=1, retain=False):
        payload = bytes(payload)
        if len(payload) <= self.max_payload:
            pieces = []
            self.inner.publish(topic, payload, qos, retain)
        else:
            size = self.max_payload - _HEADER.size
            pieces = [payload[i:i + size] for i in range(0, len(payload), size)]
            mid = os.urandom(8)
            if retain:  # a stale unchunked retained message must not outlive this one
                self.inner.publish(topic, b"", qos, True)
            for i, piece in enumerate(pieces):
                head = _HEADER.pack(_MAGIC, mid, i, len(pieces), len(payload))
                self.inner.publish(topic + SEP + str(i), head + piece, qos, retain)
        if retain:
            for i in range(len(pieces), self._retained_chunks.get(topic, 0)):
                self.inner.publish(topic + SEP + str(i), b"", qos, True)
            self._retained_chunks[topic] = len(pieces)

    def _add_chunk(self, ev):
        base = ev.topic[:ev.topic.rfind(SEP)]
        if len(ev.payload) < _HEADER.size:
            self.dropped += bool(ev.payload)
            return None
        magic, mid, index, count, total = _HEADER.unpack(ev.payload[:_HEADER.size])
        if magic != _MAGIC or count == 0 or index >= count or total > self.max_message:
            self.dropped += 1
            return None
        key = (base, mid)
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = ({}, count, total)
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
                self.dropped += 1
        parts, want, want_total = entry
        if (count, total) != (want, want_total):
            self.dropped += 1
            return None
        parts[index] = ev.payload[_HEADER.size:]
        if len(parts) < count:
            return None
        del self._pending[key]
        payload = b"".join(parts[i] for i in range(count))
        if len(payload) != total:
            self.dropped += 1
            return None
        return Event("message", base, payload, ev.retain)

    def poll(self, timeout=0.0):
        out = []
        for ev in self.inner.poll(timeout):
            if ev.kind == "message" and SEP in ev.topic:
                ev = self._add_chunk(ev)
                if ev is None:
                    continue
            out.append(ev)
        return out

    def flush(self, timeout=10.0):
        return self.inner.flush(timeout)

    def close(self):
        self.inner.close()
