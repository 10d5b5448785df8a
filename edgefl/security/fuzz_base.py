"""What the fuzz mutators share: the round's genuine updates (:class:`FuzzContext`), the publish
form of a mutant (:class:`Packet`) and raw access to the safetensors header."""

from __future__ import annotations

import json
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgefl.runtime import signing
from edgefl.runtime.wire import decode_message, encode_message


@dataclass
class FuzzContext:
    """What the fuzzer knows about a round: the genuine signed updates (by client), last round's
    (for old-round replays), the ones the aggregator already accepted (for duplicate replays),
    the aggregator's size limit, and the clients' keys (for signed poison)."""

    valid: dict[str, bytes]
    previous: dict[str, bytes] = field(default_factory=dict)
    accepted: dict[str, bytes] = field(default_factory=dict)
    max_bytes: int = 64 * 1024
    keys: dict[str, bytes] = field(default_factory=dict)  # the clients' signing keys

    @property
    def clients(self) -> list[str]:
        return sorted(self.valid)


@dataclass(frozen=True)
class Packet:
    """One MQTT publish of a mutant: ``suffix`` is appended to the sender's update topic (a
    chunk's ``/~chunk/i``), ``retain`` sets the retain flag."""

    payload: bytes
    suffix: str = ""
    retain: bool = False


# A mutator returns (topic_client, payload) or (topic_client, [Packet, ...]).
Mutator = Callable[[np.random.RandomState, FuzzContext], "tuple[str, bytes | list[Packet]]"]


def packets_of(mutant: "bytes | list[Packet]") -> list[Packet]:
    """A mutator's output as the publishes it stands for."""
    return [Packet(mutant)] if isinstance(mutant, bytes) else list(mutant)


def pick(rng, ctx: FuzzContext) -> tuple[str, bytes]:
    """A genuine update to mutate, from a client not accepted yet this round where there is one
    (a mutant on an accepted client's topic is caught as a duplicate before deeper checks)."""
    pending = [c for c in ctx.clients if c not in ctx.accepted] or ctx.clients
    cid = pending[rng.randint(len(pending))]
    return cid, ctx.valid[cid]


def split(payload: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", payload[:8])
    return json.loads(payload[8 : 8 + n].decode("utf-8"), object_pairs_hook=OrderedDict), payload[8 + n :]


def join(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw + data


def tensor_names(header: dict) -> list[str]:
    return [k for k in header if k != "__metadata__"]


def reencode(payload: bytes, change) -> bytes:
    """Decode, apply ``change(msg)`` (writable copies of the tensors), encode again; the
    signature is left as it was (so it no longer matches, unless checks before it fail)."""
    msg = decode_message(payload)
    msg.tensors = OrderedDict((k, np.array(v)) for k, v in msg.tensors.items())
    change(msg)
    return encode_message(msg)


def same_update(payload: bytes, genuine: bytes | None) -> bool:
    """Whether ``payload`` decodes to exactly the fields and tensors of ``genuine``."""
    if genuine is None:
        return False
    if payload == genuine:
        return True
    try:
        a, b = decode_message(payload), decode_message(genuine)
    except Exception:  # undecodable: certainly not the genuine update
        return False
    canon = signing.canonical_bytes
    return canon(signing.message_fields(a), a.tensors) == canon(signing.message_fields(b), b.tensors) and (
        a.params.get(signing.SIGNATURE_FIELD) == b.params.get(signing.SIGNATURE_FIELD)
    )
