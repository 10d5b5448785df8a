"""Split payloads above a size limit into chunks and reassemble them (any transport).

A payload larger than ``max_payload`` goes out as N chunks on ``{topic}/~chunk/{i}`` (retained
too when the payload is retained, so a late subscriber finds every chunk). Each chunk starts
with a 28-byte header: magic ``EFCK``, an 8-byte message id, index, count (uint32) and total
length (uint64). Chunks are idempotent: a duplicate overwrites itself.

Reassembly is bounded, because chunks come from the network: a stream (one message id on one
topic; one topic per sender) may declare at most ``max_message`` bytes in at most ``max_parts``
parts, and its parts may never add up to more than it declared. Each sender's streams together
reserve at most ``max_buffer`` declared bytes (a sender's newer stream evicts its older ones),
all streams at most ``max_pending`` streams and ``max_pending_bytes`` bytes (oldest evicted
first), and a stream with no new chunk for ``timeout_s`` is dropped. What a stream reserves is
its declared total plus ``PART_OVERHEAD`` bytes per declared part (the bookkeeping of a part),
so the memory held for partial messages is at most ``max_pending_bytes``. A dropped
stream is counted in ``drops`` by reason and logged in ``log`` (``(level, text)`` lines for the
owner's loop to print, bounded).
"""

import os
import struct
import time
from collections import OrderedDict

from edgefl.runtime.transport import Event, Transport

_HEADER = struct.Struct("<4s8sIIQ")
_MAGIC = b"EFCK"
SEP = "/~chunk/"
_MAX_LOG = 100  # lines kept between two drains of ``log``
PART_OVERHEAD = 128  # bytes one received part costs beyond its data (dict slot, int, bytes header)


def _cost(count, total):
    return total + PART_OVERHEAD * count


class _Stream(object):
    __slots__ = ("parts", "count", "total", "received", "last")

    def __init__(self, count, total, now):
        self.parts, self.count, self.total, self.received, self.last = {}, count, total, 0, now


class ChunkingTransport(Transport):
    """Wraps another transport; payloads above ``max_payload`` bytes are chunked.

    Args:
        inner: the transport to wrap.
        max_payload: largest payload sent in one piece (chunk header included).
        max_message: largest reassembled payload accepted (an aggregator's ``max_update_bytes``).
        max_parts: most parts one message may declare.
        max_buffer: bytes one sender's (one topic's) pending streams may reserve; defaults to
            what one largest message in ``max_parts`` parts reserves.
        max_pending: most streams pending at once, all senders together.
        max_pending_bytes: declared bytes all pending streams may reserve; defaults to
            4 x ``max_buffer``.
        timeout_s: a stream with no new chunk for this long is dropped.
        clock: time source (seconds), for tests.
    """

    def __init__(self, inner, max_payload=1024 * 1024, max_message=512 * 1024 * 1024,
                 max_parts=10000, max_buffer=None, max_pending=64, max_pending_bytes=None,
                 timeout_s=300.0, clock=time.time):
        if max_payload <= _HEADER.size:
            raise ValueError("max_payload must exceed the {}-byte chunk header".format(
                _HEADER.size))
        self.inner, self.max_payload = inner, max_payload
        self.max_message, self.max_parts = max_message, max_parts
        self.max_buffer = _cost(max_parts, max_message) if max_buffer is None else max_buffer
        self.max_pending = max_pending
        self.max_pending_bytes = (4 * self.max_buffer if max_pending_bytes is None
                                  else max_pending_bytes)
        self.timeout_s, self.clock = timeout_s, clock
        self.client_id = inner.client_id
        self._pending = OrderedDict()  # (topic, id) -> _Stream, oldest first
        self._retained_chunks = {}
        self.drops = {}  # reason -> count
        self.log = []

    @property
    def dropped(self):
        return sum(self.drops.values())

    @property
    def pending_bytes(self):
        """Bytes reserved by the pending streams (what their parts can grow to)."""
        return sum(_cost(s.count, s.total) for s in self._pending.values())

    def connect(self):
        self.inner.connect()

    def subscribe(self, topic_filter, qos=1):
        self.inner.subscribe(topic_filter, qos)
        if not topic_filter.endswith("#"):
            self.inner.subscribe(topic_filter + SEP + "+", qos)

    def unsubscribe(self, topic_filter):
        self.inner.unsubscribe(topic_filter)
        if not topic_filter.endswith("#"):
            self.inner.unsubscribe(topic_filter + SEP + "+")

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

    # --- reassembly -------------------------------------------------------------------------
    def _drop(self, reason, topic, detail=""):
        self.drops[reason] = self.drops.get(reason, 0) + 1
        if detail and len(self.log) < _MAX_LOG:
            self.log.append(("warn", "dropped a chunked message on {} ({}): {}".format(
                topic, reason, detail)))

    def _evict(self, key, reason):
        stream = self._pending.pop(key)
        self._drop(reason, key[0], "{} of {} parts, {} of {} bytes".format(
            len(stream.parts), stream.count, stream.received, stream.total))

    def _expire(self, now):
        for key in [k for k, s in self._pending.items() if now - s.last > self.timeout_s]:
            self._evict(key, "timeout")

    def _admit(self, key, count, total, now):
        """Open a stream, evicting what it would push over the buffers; None if refused."""
        base, cost = key[0], _cost(count, total)
        if (count > self.max_parts or total > self.max_message
                or cost > min(self.max_buffer, self.max_pending_bytes)):
            self._drop("over-limit", base, "{} parts / {} bytes declared, limits {} / {}".format(
                count, total, self.max_parts, self.max_message))
            return None
        own = [k for k in self._pending if k[0] == base]
        while own and sum(_cost(self._pending[k].count, self._pending[k].total)
                          for k in own) + cost > self.max_buffer:
            self._evict(own.pop(0), "sender-buffer")
        while self._pending and (len(self._pending) >= self.max_pending
                                 or self.pending_bytes + cost > self.max_pending_bytes):
            self._evict(next(iter(self._pending)), "buffer-full")
        stream = self._pending[key] = _Stream(count, total, now)
        return stream

    def _add_chunk(self, ev, now):
        base = ev.topic[:ev.topic.rfind(SEP)]
        if len(ev.payload) < _HEADER.size:
            if ev.payload:  # an empty payload only clears a retained chunk
                self._drop("malformed", base)
            return None
        magic, mid, index, count, total = _HEADER.unpack(ev.payload[:_HEADER.size])
        body = ev.payload[_HEADER.size:]
        if magic != _MAGIC or count == 0 or index >= count or len(body) > total:
            self._drop("malformed", base)
            return None
        key = (base, mid)
        stream = self._pending.get(key)
        if stream is None:
            stream = self._admit(key, count, total, now)
            if stream is None:
                return None
        elif (count, total) != (stream.count, stream.total):
            self._drop("inconsistent", base)
            return None
        stream.received += len(body) - len(stream.parts.get(index, b""))
        stream.parts[index] = body
        stream.last = now
        if stream.received > stream.total:
            self._evict(key, "overflow")
            return None
        if len(stream.parts) < stream.count:
            return None
        del self._pending[key]
        if stream.received != stream.total:
            self._drop("size-mismatch", base, "parts hold {} bytes, {} declared".format(
                stream.received, stream.total))
            return None
        return Event("message", base, b"".join(stream.parts[i] for i in range(count)),
                     ev.retain)

    def poll(self, timeout=0.0):
        out = []
        now = self.clock()
        for ev in self.inner.poll(timeout):
            if ev.kind == "message" and SEP in ev.topic:
                ev = self._add_chunk(ev, now)
                if ev is None:
                    continue
            out.append(ev)
        self._expire(now)
        return out

    def flush(self, timeout=10.0):
        return self.inner.flush(timeout)

    def close(self):
        self.inner.close()
