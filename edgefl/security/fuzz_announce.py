"""Malformed and hostile messages for fuzzing an agent: round announcements and status messages.

Each mutator takes a random state and an :class:`AgentFuzzContext` (the round's genuine signed
announcement, the previous one, a genuine status, the aggregator's signing key) and returns an
:class:`AgentMutant`: which topic it goes to (``round`` or ``status``), the bytes, whether it
is retained, and ``mark``: the unique round number it carries when it still decodes, so the
agent's answer (a refusal on its agent-status topic, or a log line) can be traced back to it.

The ``param`` and ``model`` classes are signed with the aggregator's key, as a compromised or
buggy aggregator would send them: they pass the signature and meet the schema and model checks
behind it; each is malformed by construction and must be refused. ``ANNOUNCE_MUTATORS`` is the
registry.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from edgefl.runtime.announce import AnnouncementSigner
from edgefl.runtime.wire import Message, decode_message, encode_message, model_digest
from edgefl.security import fuzz, fuzz_fields
from edgefl.security.fuzz_base import FuzzContext

NAN, INF = float("nan"), float("inf")

# param -> values that are malformed there whatever the codec (the schema's INBOUND_PARAMS and
# the codec check must refuse each; written out by hand, not derived from the schema)
BAD_PARAMS = {
    "sampled": [0, 1.5, True, "edge-0", "xedge-0x", {}, {"edge-0": 1}, [0], [None], [["edge-0"]],
                ["x" * 300], [True]],
    "train": [5, "epochs", [], [1], True, {"epochs": [1]}, {"lr": NAN}, {"lr": INF},
              {"epochs": {}}, {"x" * 200: 1}, {"k%d" % i: 1 for i in range(65)}, {"lr": 10**400},
              {"batch_size": "x" * 300}],
    "codec": [5, None, [], {}, True, "x" * 40, "pickle", "none "],
    "codec_options": [5, "x", [], [1], None, {"nope": 1}, {"stochastic": [1]}, {"stochastic": NAN},
                      {"ratio": "x"}, {"x" * 200: 1}],
    "deadline": ["soon", True, [], {}, NAN, INF, -INF, 10**400],
    "final": ["no", "true", 1, 0, None, []],
    "epoch": ["2", 1.5, -1, True, [1], 2**60, NAN],
    "mode": [5, [], {}, None, "x" * 40],
    "delta": [5, "x", [], True, {}, {"options": []}, {"options": {"rate": [1]}}],
}
BAD_STATUS = {
    "accepted": ["false", "true", 1, 0, None, [], {}],
    "reason": [5, None, [], ["duplicate:"], {}, "x" * 5000, True],
    "current_round": ["1", 1.5, -1, True, None, [1], 2**60],
}
BAD_SIGNATURES = [None, 5, [], {}, "", "zz", "ab" * 64, "00" * 64]

# byte-level classes of the update fuzzer, applied to a genuine announcement or status
_WIRE = {**{k: fuzz.MUTATORS[k] for k in ("truncated", "bit_flip", "header_length", "header_json",
                                          "huge_shape", "bad_offsets", "bad_metadata", "garbage")},
         **{k: fuzz_fields.FIELD_MUTATORS[k] for k in ("metadata_type", "unicode_numeral",
                                                      "entry_type", "zero_huge_shape")}}
_STATUS_WIRE = {k: v for k, v in _WIRE.items()  # a status has no tensors to mutate
                if k not in ("huge_shape", "bad_offsets", "entry_type", "zero_huge_shape")}


@dataclass
class AgentFuzzContext:
    """What the fuzzer knows: the round's genuine announcement, last round's (for replays), a
    genuine status for the agent, and the aggregator's signing key (hex)."""

    announcement: bytes
    client_id: str
    private_key: str
    previous: bytes | None = None
    status: bytes | None = None
    counter: list = field(default_factory=lambda: [0])

    def __post_init__(self):
        self.signer = AnnouncementSigner(self.private_key)

    def mark(self) -> int:
        """A fresh round number far above every genuine one."""
        self.counter[0] += 1
        return 10**6 + self.counter[0]


@dataclass(frozen=True)
class AgentMutant:
    topic: str  # "round" | "status"
    payload: bytes
    retain: bool = False
    mark: int | None = None  # the round it carries (None: it may not decode)


def _one(rng, items):
    return items[rng.randint(len(items))]


def _marked(ctx, payload, change, sign):
    """Decode, change, give a unique round, sign with the aggregator's key (or not), encode."""
    msg = decode_message(payload)
    msg.tensors = OrderedDict((k, np.array(v)) for k, v in msg.tensors.items())
    change(msg)
    msg.round = ctx.mark()
    if sign:
        ctx.signer.sign(msg)
    return msg.round, encode_message(msg)


def announce_param(rng, ctx):
    """One param of a signed announcement holding a value of the wrong type or range."""
    name = _one(rng, sorted(BAD_PARAMS))
    value = _one(rng, BAD_PARAMS[name])
    mark, payload = _marked(ctx, ctx.announcement, lambda m: m.params.__setitem__(name, value), True)
    return AgentMutant("round", payload, bool(rng.rand() < 0.2), mark)


def announce_model(rng, ctx):
    """A signed announcement whose model is renamed, reshaped, retyped, grown, shrunk or not
    finite; its digest recomputed (so only the model check can catch it), or left (the digest
    check)."""
    kind = rng.randint(7)
    keep_digest = kind == 6

    def change(msg):
        names = sorted(msg.tensors)
        name = _one(rng, names)
        t = msg.tensors
        if kind == 0:
            t[name + ".x"] = t.pop(name)
        elif kind == 1:
            t[name] = np.concatenate([t[name].reshape(-1), np.zeros(1, np.float32)])
        elif kind == 2:
            t[name] = t[name].astype(_one(rng, [np.float64, np.float16, np.int32]))
        elif kind == 3:
            t["extra"] = np.zeros(2, np.float32)
        elif kind == 4 and len(names) > 1:
            del t[name]
        else:
            flat = t[name].reshape(-1)
            flat[rng.randint(flat.size)] = _one(rng, [np.nan, np.inf, -np.inf])
        if not keep_digest:
            msg.base_digest = model_digest(t)

    mark, payload = _marked(ctx, ctx.announcement, change, True)
    return AgentMutant("round", payload, False, mark)


def announce_signature(rng, ctx):
    """The genuine announcement with its signature missing, of another type, or not the key's."""
    value = _one(rng, BAD_SIGNATURES)
    mark, payload = _marked(ctx, ctx.announcement, lambda m: m.params.__setitem__("signature", value), False)
    return AgentMutant("round", payload, bool(rng.rand() < 0.2), mark)


def announce_replay(rng, ctx):
    """Last round's genuine announcement again (first round: the genuine one, re-delivered)."""
    return AgentMutant("round", ctx.previous or ctx.announcement, False, None)


def announce_wire(rng, ctx):
    """A byte-level mutant of the genuine announcement (the update fuzzer's classes)."""
    _, payload = _WIRE[_one(rng, sorted(_WIRE))](rng, FuzzContext(valid={ctx.client_id: ctx.announcement}))
    return AgentMutant("round", payload, bool(rng.rand() < 0.2), None)


def status_param(rng, ctx):
    """A status for the agent with one param of the wrong type or range."""
    name = _one(rng, sorted(BAD_STATUS))
    params = {"accepted": False, "reason": "norm-bound: fuzz", "current_round": 1}
    params[name] = _one(rng, BAD_STATUS[name])
    mark = ctx.mark()
    msg = Message(kind="status", federation=decode_message(ctx.announcement).federation, round=mark,
                  client_id=ctx.client_id, params=params)
    return AgentMutant("status", encode_message(msg), False, mark)


def status_wire(rng, ctx):
    """A byte-level mutant of a genuine status."""
    genuine = ctx.status or encode_message(Message(
        kind="status", federation=decode_message(ctx.announcement).federation, round=1,
        client_id=ctx.client_id, params={"accepted": True, "reason": "", "current_round": 1}))
    mutate = _STATUS_WIRE[_one(rng, sorted(_STATUS_WIRE))]
    _, payload = mutate(rng, FuzzContext(valid={ctx.client_id: genuine}))
    return AgentMutant("status", payload, False, None)


ANNOUNCE_MUTATORS = {
    "announce_param": announce_param,
    "announce_model": announce_model,
    "announce_signature": announce_signature,
    "announce_replay": announce_replay,
    "announce_wire": announce_wire,
    "status_param": status_param,
    "status_wire": status_wire,
}
# classes every mutant of which the agent must answer with a refusal (agent-status topic) or a
# logged 'ignored a status' line, traced by its mark
MARKED = ("announce_param", "announce_model", "announce_signature", "status_param")


def agent_mutants(ctx: AgentFuzzContext, n: int, seed: int = 0, kinds=None):
    """``n`` mutants ``(kind, AgentMutant)``, cycling through ``kinds`` (all by default)."""
    rng = np.random.RandomState(seed)
    names = list(kinds or ANNOUNCE_MUTATORS)
    for i in range(n):
        kind = names[i % len(names)]
        yield kind, ANNOUNCE_MUTATORS[kind](rng, ctx)
