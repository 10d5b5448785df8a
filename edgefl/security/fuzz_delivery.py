"""Mutators about how a message is published rather than what it holds: poison published
retained on an update topic (it comes back on every restart), poison split into well-formed
chunks, and chunk floods (over-limit declarations, parts overflowing their declared total,
streams never finished, inconsistent and tiny parts). A chunk flood is dropped by the transport
without a status; everything else is answered with a rejection."""

from __future__ import annotations

import struct

from edgefl.runtime.transport.chunking import SEP
from edgefl.security.fuzz_base import Packet, pick, same_update
from edgefl.security.fuzz_fields import FIELD_MUTATORS

_CHUNK = struct.Struct("<4s8sIIQ")  # the chunk header: magic, message id, index, count, total


def _poison(rng, ctx):
    """A mutant of the classes that used to crash the aggregator, on a pending client's topic
    (never one that still means the genuine update, e.g. codec options set to what they were)."""
    names = sorted(FIELD_MUTATORS)
    while True:
        cid, payload = FIELD_MUTATORS[names[rng.randint(len(names))]](rng, ctx)
        if not same_update(payload, ctx.valid.get(cid)):
            return cid, payload


def retained_poison(rng, ctx):
    """A crashing payload published retained on the sender's own update topic."""
    cid, payload = _poison(rng, ctx)
    return cid, [Packet(payload, retain=True)]


def chunked_poison(rng, ctx):
    """A crashing payload split into well-formed chunks (it reassembles, then is rejected)."""
    cid, payload = _poison(rng, ctx)
    size = int(rng.randint(64, 512))
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    mid = rng.bytes(8)
    order = rng.permutation(len(pieces))
    return cid, [
        Packet(_CHUNK.pack(b"EFCK", mid, int(i), len(pieces), len(payload)) + pieces[i], SEP + str(i))
        for i in order
    ]


def _chunk(mid, index, count, total, body):
    return Packet(_CHUNK.pack(b"EFCK", mid, index, count, total) + body, SEP + str(index % 64))


def chunk_flood(rng, ctx):
    """Chunks that must be dropped, whatever their number: limits exceeded at once, parts that
    overflow what they declared (the 100 MiB under one message id class, scaled down), streams
    never finished, counts and totals that change, floods of tiny parts."""
    cid, _ = pick(rng, ctx)
    mid, limit = rng.bytes(8), ctx.max_bytes
    kind = rng.randint(6)
    if kind == 0:  # declares more than an update may hold
        return cid, [_chunk(mid, 0, 2, limit * 1024, b"x" * 1024)]
    if kind == 1:  # declares more parts than any sender would cut
        return cid, [_chunk(mid, 0, 2**31, limit, b"x")]
    if kind == 2:  # 24 parts of 16 KiB under one id that declares one update's worth
        body = b"y" * (16 * 1024)
        return cid, [_chunk(mid, i, 64, limit, body) for i in range(24)]
    if kind == 3:  # many messages started and never finished
        return cid, [_chunk(rng.bytes(8), 0, 2, limit, b"z" * 512) for _ in range(16)]
    if kind == 4:  # one id, changing counts and totals
        return cid, [_chunk(mid, i, 2 + i, limit - i, b"w" * 64) for i in range(8)]
    # a flood of one-byte parts of a message that cannot complete before it is evicted
    return cid, [_chunk(mid, i, 9000, 9000, b"v") for i in range(256)]


DELIVERY_MUTATORS = {
    "retained_poison": retained_poison,
    "chunked_poison": chunked_poison,
    "chunk_flood": chunk_flood,
}
NO_STATUS = frozenset(["chunk_flood"])  # dropped by the transport: no status comes back
