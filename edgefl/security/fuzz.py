"""Malformed and hostile update messages for fuzzing an aggregator.

Each mutator takes a random state and a :class:`FuzzContext` (the round's genuine, signed
updates) and returns ``(topic_client, payload)``: the client whose update topic the payload is
published on, and the bytes (or a list of :class:`Packet` when the mutant is about how it is
published: retained, or as chunks). None of them can produce an update the aggregator should
accept: genuine updates are signed and every mutant either breaks the format, breaks a field,
replays a message, or lacks its sender's key. ``MUTATORS`` is the registry (the classes of
``fuzz_fields`` and ``fuzz_delivery`` included); ``mutants`` draws from it.
"""

from __future__ import annotations

import os
import struct
from collections import OrderedDict
from typing import Iterator

import numpy as np

from edgefl.runtime import signing
from edgefl.runtime.wire import decode_message, encode_message
from edgefl.security import fuzz_delivery, fuzz_fields
from edgefl.security.fuzz_base import (
    FuzzContext,
    Mutator,
    Packet,
    join,
    packets_of,
    pick,
    reencode,
    same_update,
    split,
    tensor_names,
)

__all__ = ["FuzzContext", "MUTATORS", "NO_STATUS", "Packet", "mutants", "packets_of", "same_update"]


def truncated(rng, ctx):
    cid, p = pick(rng, ctx)
    return cid, p[: rng.randint(1, len(p))]


def bit_flip(rng, ctx):
    cid, p = pick(rng, ctx)
    buf = bytearray(p)
    # distinct bits: flipping one bit twice would give back the genuine update
    for bit in rng.choice(len(buf) * 8, size=rng.randint(1, 9), replace=False):
        buf[bit // 8] ^= 1 << (bit % 8)
    return cid, bytes(buf)


def header_length(rng, ctx):
    cid, p = pick(rng, ctx)
    (n,) = struct.unpack("<Q", p[:8])
    choices = [0, 1, 7, n - 1, n + 1, n + 8, len(p), 2**31, 2**63, 2**64 - 1, int(rng.randint(1, 2**31))]
    return cid, struct.pack("<Q", choices[rng.randint(len(choices))]) + p[8:]


def header_json(rng, ctx):
    cid, p = pick(rng, ctx)
    _, data = split(p)
    depth = int(rng.randint(100, 5000))
    bodies = [
        b"not json at all",
        b"[1, 2, 3]",
        b'{"a": 1, "a": 2}',
        b"[" * depth + b"]" * depth,
        b"\xff\xfe\x00garbage",
        b'{"__metadata__": []}',
        b'{"__metadata__": {"edgefl.schema": 1}}',
        b'{"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}}',
        b"",
    ]
    body = bodies[rng.randint(len(bodies))]
    return cid, struct.pack("<Q", len(body)) + body + data


def huge_shape(rng, ctx):
    cid, p = pick(rng, ctx)
    header, data = split(p)
    name = tensor_names(header)[rng.randint(len(tensor_names(header)))]
    shapes = [[10**12], [2**31, 2**31], [2**62, 4], [1] * 9, [-1, 4], [3.5], "big", [10**30], [0, 10**9]]
    header[name]["shape"] = shapes[rng.randint(len(shapes))]
    return cid, join(header, data)


def bad_offsets(rng, ctx):
    cid, p = pick(rng, ctx)
    header, data = split(p)
    name = tensor_names(header)[rng.randint(len(tensor_names(header)))]
    a, b = header[name]["data_offsets"]
    offsets = [[b, a], [a, b + 4], [a + 4, b + 4], [0, 2**63], [-4, b], [a], None, [a, b, b]]
    header[name]["data_offsets"] = offsets[rng.randint(len(offsets))]
    return cid, join(header, data)


def bad_dtype(rng, ctx):
    cid, p = pick(rng, ctx)
    if rng.rand() < 0.5:  # header lies about the dtype of the bytes
        header, data = split(p)
        name = tensor_names(header)[rng.randint(len(tensor_names(header)))]
        header[name]["dtype"] = ["F64", "F16", "I8", "BF16", "XYZ", "U8", 7][rng.randint(7)]
        return cid, join(header, data)
    dtype = [np.float64, np.float16, np.int32, np.uint8][rng.randint(4)]  # consistent, but wrong
    return cid, reencode(
        p, lambda m: m.tensors.update((k, v.astype(dtype)) for k, v in list(m.tensors.items()))
    )


def non_finite(rng, ctx):
    cid, p = pick(rng, ctx)

    def poison(msg):
        name = sorted(msg.tensors)[rng.randint(len(msg.tensors))]
        flat = msg.tensors[name].reshape(-1)
        flat[rng.randint(flat.size)] = [np.nan, np.inf, -np.inf][rng.randint(3)]

    return cid, reencode(p, poison)


def scaled(rng, ctx):
    """A boosted update (x1e6): the norm bound must catch it."""
    cid, p = pick(rng, ctx)
    return cid, reencode(
        p, lambda m: m.tensors.update((k, v * np.float32(1e6)) for k, v in list(m.tensors.items()))
    )


def wrong_tensors(rng, ctx):
    cid, p = pick(rng, ctx)

    def change(msg):
        names = sorted(msg.tensors)
        name = names[rng.randint(len(names))]
        kind = rng.randint(4)
        if kind == 0:
            msg.tensors[name + ".x"] = msg.tensors.pop(name)
        elif kind == 1:
            del msg.tensors[name]
        elif kind == 2:
            msg.tensors["extra"] = np.zeros(3, np.float32)
        else:
            msg.tensors[name] = np.concatenate([msg.tensors[name].reshape(-1), np.zeros(1, np.float32)])

    return cid, reencode(p, change)


def bad_field(rng, ctx):
    cid, p = pick(rng, ctx)
    changes = [
        lambda m: setattr(m, "federation", "other"),
        lambda m: setattr(m, "kind", ["round", "status", "", "UPDATE"][rng.randint(4)]),
        lambda m: setattr(m, "num_examples", [0, 10**12][rng.randint(2)]),
        lambda m: setattr(m, "encoding", ["fedfq", "pickle", "", "none "][rng.randint(4)]),
        lambda m: setattr(m, "round", m.round + int(rng.randint(1, 1000))),
        lambda m: setattr(m, "base_digest", os.urandom(32).hex()),
        lambda m: setattr(m, "client_id", ""),
        lambda m: setattr(m, "schema", 99),
    ]
    return cid, reencode(p, changes[rng.randint(len(changes))])


def bad_metadata(rng, ctx):
    cid, p = pick(rng, ctx)
    header, data = split(p)
    meta = header["__metadata__"]
    key = ["round", "num_examples", "metrics", "params", "edgefl.schema"][rng.randint(5)]
    meta[key] = ["-1", "1e3", "NaN", "{", "[]", "9" * 40, "", "null"][rng.randint(8)]
    if rng.rand() < 0.2:
        header["__metadata__"] = {"round": 1}  # not str -> str
    return cid, join(header, data)


def _a_and_b(rng, ctx):
    """Sender A (any client) and victim B (a client not accepted yet where there is one)."""
    b, _ = pick(rng, ctx)
    others = [c for c in ctx.clients if c != b]
    a = others[rng.randint(len(others))]
    return a, b


def other_client(rng, ctx):
    """A genuine update of A published on B's topic."""
    a, b = _a_and_b(rng, ctx)
    return b, ctx.valid[a]


def impersonate(rng, ctx):
    """A's update relabelled as B's, on B's topic: it lacks B's key."""
    a, b = _a_and_b(rng, ctx)
    return b, reencode(ctx.valid[a], lambda m: setattr(m, "client_id", b))


def unknown_client(rng, ctx):
    _, p = pick(rng, ctx)
    who = "evil-%d" % rng.randint(1000)
    return who, reencode(p, lambda m: setattr(m, "client_id", who))


def unsigned(rng, ctx):
    cid, p = pick(rng, ctx)
    return cid, reencode(p, lambda m: m.params.pop(signing.SIGNATURE_FIELD, None))


def forged(rng, ctx):
    """Signed, but with a key that is not the sender's."""
    cid, p = pick(rng, ctx)
    msg = decode_message(p)
    msg.tensors = OrderedDict((k, np.array(v) * np.float32(0.5)) for k, v in msg.tensors.items())
    return cid, encode_message(signing.sign_message(os.urandom(32), msg))


def old_round(rng, ctx):
    """Exact replay of a genuine update from the previous round."""
    source = ctx.previous or ctx.valid
    cid = sorted(source)[rng.randint(len(source))]
    if not ctx.previous:  # first round: an honest-looking update claiming an earlier base
        return cid, reencode(source[cid], lambda m: setattr(m, "round", 0))
    return cid, source[cid]


def replay(rng, ctx):
    """Exact replay of an update the aggregator already accepted this round."""
    if not ctx.accepted:
        return old_round(rng, ctx)
    cid = sorted(ctx.accepted)[rng.randint(len(ctx.accepted))]
    return cid, ctx.accepted[cid]


def oversize(rng, ctx):
    cid, p = pick(rng, ctx)
    return cid, p + b"\0" * (ctx.max_bytes + 1 - len(p) + int(rng.randint(0, 64)))


def garbage(rng, ctx):
    cid = ctx.clients[rng.randint(len(ctx.clients))]
    return cid, rng.bytes(int(rng.randint(1, 2048)))


MUTATORS: dict[str, Mutator] = {
    "truncated": truncated,
    "bit_flip": bit_flip,
    "header_length": header_length,
    "header_json": header_json,
    "huge_shape": huge_shape,
    "bad_offsets": bad_offsets,
    "bad_dtype": bad_dtype,
    "non_finite": non_finite,
    "scaled": scaled,
    "wrong_tensors": wrong_tensors,
    "bad_field": bad_field,
    "bad_metadata": bad_metadata,
    "other_client": other_client,
    "impersonate": impersonate,
    "unknown_client": unknown_client,
    "unsigned": unsigned,
    "forged": forged,
    "old_round": old_round,
    "replay": replay,
    "oversize": oversize,
    "garbage": garbage,
    **fuzz_fields.FIELD_MUTATORS,
    **fuzz_delivery.DELIVERY_MUTATORS,
}
NO_STATUS = fuzz_delivery.NO_STATUS


REPLAYS = ("replay", "old_round")  # byte-identical to a genuine update, sent where it is not one


def mutants(
    ctx: FuzzContext, n: int, seed: int = 0, kinds: list[str] | None = None
) -> Iterator[tuple[str, str, list[Packet]]]:
    """``n`` mutants ``(kind, topic_client, packets)``, cycling through ``kinds`` (all by default)."""
    rng = np.random.RandomState(seed)
    names = list(kinds or MUTATORS)
    for i in range(n):
        kind = names[i % len(names)]
        while True:  # a mutant that still means the genuine update (e.g. a flip that renames an
            # optional metadata key to one nobody reads) is not a mutant: draw again
            topic_client, mutant = MUTATORS[kind](rng, ctx)
            packets = packets_of(mutant)
            whole = packets[0].payload if len(packets) == 1 and not packets[0].suffix else None
            if kind in REPLAYS or whole is None or not same_update(whole, ctx.valid.get(topic_client)):
                break
        yield kind, topic_client, packets
