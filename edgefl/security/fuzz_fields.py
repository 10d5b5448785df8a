"""Mutators that put the wrong type or range in one field of a genuine update: JSON of every type
in every metadata field and tensor-entry field, other scripts' numerals where integers go,
zero-sized shapes with huge dimensions, metrics and params of every type. These are the classes
an independent hostile-input run found killing the aggregator (issue 21); each must now be one
rejection with a reason."""

from __future__ import annotations

import json

from edgefl.runtime import signing
from edgefl.runtime.schema import MESSAGE_FIELDS
from edgefl.runtime.wire import decode_message, encode_message
from edgefl.security.fuzz_base import join, pick, split, tensor_names

# One JSON value of every type, and the edges of each (huge ints, non-finite floats, long
# strings, nested containers).
EVERY_TYPE = [
    None, True, False, 0, -1, 7, 2**31, 2**64, 10**400, 0.5, -0.0, 1e308,
    float("nan"), float("inf"), float("-inf"), "", "1", "x" * 300, "\u00b2",
    [], [1], [[0]], ["F32"], {}, {"a": 1}, {"F32": [1]},
]

# Numerals of other scripts: superscripts and circled digits pass str.isdigit() but not int();
# Arabic-Indic, Devanagari, fullwidth and mathematical digits pass both.
NUMERALS = [
    "\u00b2", "\u00b9", "\u2460", "\u0661", "\u0663\u0662", "\U0001d7d9", "\u2167", "\u00bd",
    "\uff11\uff10", "\u0967", "1\u0661", "\u00b2\u00b2",
]

FIELDS = sorted(MESSAGE_FIELDS) + ["edgefl.schema"]
_INTEGERS = ["round", "num_examples", "edgefl.schema"]


def _one(rng, items):
    return items[rng.randint(len(items))]


def _with_metadata(rng, ctx, field, value):
    cid, p = pick(rng, ctx)
    header, data = split(p)
    header["__metadata__"][field] = value
    return cid, join(header, data)


def metadata_type(rng, ctx):
    """A metadata field holding a JSON value of another type, raw or as its JSON text."""
    value = _one(rng, EVERY_TYPE)
    return _with_metadata(rng, ctx, _one(rng, FIELDS), value if rng.rand() < 0.5 else json.dumps(value))


def unicode_numeral(rng, ctx):
    """An integer field written in another script's numerals."""
    return _with_metadata(rng, ctx, _one(rng, _INTEGERS), _one(rng, NUMERALS))


def entry_type(rng, ctx):
    """A tensor entry's dtype, shape or data_offsets holding a JSON value of another type."""
    cid, p = pick(rng, ctx)
    header, data = split(p)
    name = _one(rng, tensor_names(header))
    header[name][_one(rng, ["dtype", "shape", "data_offsets"])] = _one(rng, EVERY_TYPE)
    return cid, join(header, data)


_ZERO_HUGE = [[0, 10**30], [0, 2**62, 4], [2**40, 0, 2**40], [0, 2**31, 2**31, 2**31], [0] * 7 + [2**63]]


def zero_huge_shape(rng, ctx):
    """A zero-sized tensor whose other dimensions no array can have; its bytes are cut out and
    the other offsets moved, so the byte ranges still tile the data exactly."""
    cid, p = pick(rng, ctx)
    header, data = split(p)
    name = _one(rng, tensor_names(header))
    start, end = header[name]["data_offsets"]
    for other in tensor_names(header):
        a, b = header[other]["data_offsets"]
        if a >= end:
            header[other]["data_offsets"] = [a - (end - start), b - (end - start)]
    header[name]["shape"] = _one(rng, _ZERO_HUGE)
    header[name]["data_offsets"] = [start, start]
    return cid, join(header, data[:start] + data[end:])


def metric_type(rng, ctx):
    """A metric of every type (string, null, list, object, bool, ints too large for a float,
    NaN, infinity), or too many metrics."""
    cid, p = pick(rng, ctx)
    header, data = split(p)
    metrics = json.loads(header["__metadata__"].get("metrics", "{}"))
    if rng.rand() < 0.1:
        metrics.update(("m%d" % i, 1.0) for i in range(65))
    else:
        metrics["loss"] = _one(rng, EVERY_TYPE)
    header["__metadata__"]["metrics"] = json.dumps(metrics)
    return cid, join(header, data)


_BAD_METRICS = ["0.5", None, [1.0], {"a": 1}, True, 2**64, 10**400, float("nan"), float("inf")]


def signed_metrics(rng, ctx):
    """A metric that is not a finite number, in an update its sender signed (a buggy or
    compromised client): it passes the signature, so only the metrics check stands between it
    and the round close that used to fail on it."""
    cid, p = pick(rng, ctx)
    msg = decode_message(p)
    msg.metrics = dict(msg.metrics, loss=_one(rng, _BAD_METRICS))
    if rng.rand() < 0.1:
        msg.metrics.update(("m%d" % i, 1.0) for i in range(65))
    return cid, encode_message(signing.sign_message(ctx.keys[cid], msg))


def params_type(rng, ctx):
    """The codec options or the signature holding a JSON value of another type."""
    cid, p = pick(rng, ctx)
    header, data = split(p)
    params = json.loads(header["__metadata__"].get("params", "{}"))
    params[_one(rng, ["codec", "signature"])] = _one(rng, EVERY_TYPE)
    header["__metadata__"]["params"] = json.dumps(params)
    return cid, join(header, data)


FIELD_MUTATORS = {
    "metadata_type": metadata_type,
    "unicode_numeral": unicode_numeral,
    "entry_type": entry_type,
    "zero_huge_shape": zero_huge_shape,
    "metric_type": metric_type,
    "signed_metrics": signed_metrics,
    "params_type": params_type,
}
