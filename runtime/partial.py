"""Partial aggregates: what a regional aggregator forwards to the root (hierarchical FedAvg).

A partial is one wire message (kind ``partial``) from station S for round r: the exact int64
sums of the updates S folded since its previous partial (``edgefl.runtime.fold``, on the grid
the root announced for r), their total weight (the example counts) and count, and the
contributors — ``[client, version, examples, metrics]`` each. The root adds the sums to its own
running sum, so the root's model is bitwise the model one aggregator would make from the same
updates. ``seq`` numbers a station's partials within a round: a partial delivered twice is
merged once.

Signed with HMAC-SHA256 (``edgefl.runtime.signing``), with a key the station shares with the
root (``edgefl federation init --stations`` writes one per station into the root's keyring):
the root is the only verifier of a partial, so a shared secret is enough, verifying costs one
sha256 pass with the standard library, and it is the check the root already runs on every
update. (The round announcement is the opposite case — one signer, many verifiers that must not
be able to forge it — hence Ed25519 there.)
"""

from collections import OrderedDict, namedtuple

import numpy as np

from edgefl.runtime.errors import WireError
from edgefl.runtime.schema import MAX_ID, MAX_SAMPLED, text, update_metrics
from edgefl.runtime.signing import sign_message, verify_message
from edgefl.runtime.wire import Message, encode_message

__all__ = ["ENCODING", "KIND", "Partial", "partial_message", "read_partial", "fold_params",
           "read_fold_params"]

KIND = "partial"
ENCODING = "fold-int64"

Partial = namedtuple("Partial", "station round digest seq sums weight count contributors")


def partial_message(federation, station, round_, digest, seq, fold, contributors, key=None):
    """The bytes of station ``station``'s partial ``seq`` for round ``round_``.

    Args:
        fold: the ``Fold`` holding the station's sums since its previous partial.
        contributors: (client, version) -> (num_examples, metrics) of the updates in ``fold``.
        key: the station's HMAC key (bytes), or None to leave it unsigned.
    """
    rows = [[cid, int(v), int(n), dict(m)] for (cid, v), (n, m) in sorted(contributors.items())]
    params = {"seq": int(seq), "grid": [[n, g[0], g[1]] for n, g in fold.grid.items()],
              "weight": fold.weight, "count": fold.count, "contributors": rows}
    msg = Message(kind=KIND, federation=federation, round=round_, client_id=station,
                  base_digest=digest, num_examples=int(fold.weight), encoding=ENCODING,
                  params=params, tensors=fold.exact_sums())
    if key is not None:
        sign_message(key, msg)
    return encode_message(msg)


def _need(ok, detail):
    if not ok:
        raise WireError("partial", detail)


def _int(value, what, lo=0, hi=2 ** 53):
    _need(type(value) is int and lo <= value <= hi, "{} must be an integer in {}..{}".format(
        what, lo, hi))
    return value


def _contributors(rows, round_):
    _need(isinstance(rows, list) and len(rows) <= MAX_SAMPLED,
          "contributors must be a list of at most {}".format(MAX_SAMPLED))
    out = OrderedDict()
    for row in rows:
        _need(isinstance(row, list) and len(row) == 4, "a contributor is [client, version, "
              "examples, metrics]")
        cid = text(row[0], "contributor id", MAX_ID)
        _need(_int(row[1], "contributor version") == round_, "contributor {!r} is for version "
              "{}, the partial for round {}".format(cid[:60], row[1], round_))
        _need((cid, row[1]) not in out, "contributor {!r} twice".format(cid[:60]))
        out[(cid, row[1])] = (_int(row[2], "contributor examples", 1), update_metrics(row[3]))
    return out


def read_partial(msg, grid, keyring=None):
    """Check a decoded partial against the root's round grid; a :class:`Partial`.

    Raises WireError("partial", detail) on anything inconsistent: kind, encoding, grid, tensor
    names, dtypes and shapes, contributors, weight (the sum of their example counts) and count,
    and (with a keyring) the station's signature.
    """
    _need(msg.kind == KIND, "expected a partial, got {!r}".format(msg.kind[:40]))
    _need(msg.encoding == ENCODING, "encoding {!r}, expected {!r}".format(msg.encoding[:40],
                                                                          ENCODING))
    p = msg.params
    seq = _int(p.get("seq"), "seq")
    theirs = p.get("grid")
    _need(isinstance(theirs, list) and [list(r) for r in theirs if isinstance(r, list)]
          == [[n, g[0], g[1]] for n, g in grid.items()],
          "its fixed-point grid is not this round's (the station folded for another round)")
    rows = _contributors(p.get("contributors"), msg.round)
    weight, count = _int(p.get("weight"), "weight"), _int(p.get("count"), "count")
    _need(count == len(rows) and weight == sum(n for n, _ in rows.values())
          and msg.num_examples == weight, "weight and count do not match the contributors")
    _need(set(msg.tensors) == set(grid), "tensor names are not the model's")
    sums = OrderedDict()
    for name in grid:
        a = msg.tensors[name]
        _need(a.dtype == np.dtype("<i8"), "{!r} is {}, expected int64".format(name[:60], a.dtype))
        sums[name] = a
    if keyring is not None:
        bad = verify_message(keyring, msg)
        _need(bad is None, "signature: {}".format(bad))
    return Partial(msg.client_id, msg.round, msg.base_digest, seq, sums, weight, count, rows)


def fold_params(fold, clip_norm, max_norm):
    """What a round announcement tells regional aggregators (``params["fold"]``): the grid,
    the shapes, and the bounds that decide an update's weight and acceptance."""
    return {"grid": [[n, g[0], g[1]] for n, g in fold.grid.items()],
            "shapes": [[n, list(s)] for n, s in fold.shapes.items()],
            "clip_norm": clip_norm, "max_norm": max_norm}


def read_fold_params(value):
    """(grid, shapes, clip_norm, max_norm) of an announcement's ``params["fold"]``."""
    _need(isinstance(value, dict), "params.fold must be an object")
    grid, shapes = OrderedDict(), OrderedDict()
    for row in value.get("grid") or []:
        _need(isinstance(row, list) and len(row) == 3, "a grid row is [name, bits, range]")
        grid[text(row[0], "tensor name", 1024)] = [_int(row[1], "bits", -1000, 1000),
                                                   _int(row[2], "range", -1000, 1000)]
    for row in value.get("shapes") or []:
        _need(isinstance(row, list) and len(row) == 2 and isinstance(row[1], list),
              "a shape row is [name, [dims]]")
        shapes[text(row[0], "tensor name", 1024)] = tuple(_int(d, "dimension", 0, 2 ** 40)
                                                         for d in row[1])
    _need(grid and set(grid) == set(shapes), "params.fold names no tensors, or two sets")
    bounds = [value.get("clip_norm"), value.get("max_norm")]
    for b in bounds:
        _need(b is None or (type(b) in (int, float) and np.isfinite(b) and b > 0),
              "params.fold bounds must be positive numbers or null")
    return grid, shapes, bounds[0], bounds[1]
