"""Validate a client update against what the aggregator expects, before aggregating it.

:func:`validate_update` is pure: bytes + expectations in, a :class:`Verdict` out. It never
raises on bad input; the verdict's ``reason`` is ``"code: detail"`` and is published to the
sender's status topic.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from edgefl.runtime.codecs import CODECS, make_codec
from edgefl.runtime.errors import EdgeRuntimeError, WireError
from edgefl.runtime.schema import update_metrics, update_params
from edgefl.runtime.signing import verify_message
from edgefl.runtime.strategies import update_norm
from edgefl.runtime.wire import Limits, decode_message

__all__ = ["Expectation", "Verdict", "validate_update"]


@dataclass
class Expectation:
    """What a valid update looks like right now.

    ``versions`` maps a global-model digest to its version (round); in sync mode it holds only
    the current model, in async mode the last ``max_staleness + 1`` versions.
    """

    federation: str
    round: int
    versions: Dict[str, int]
    shapes: Dict[str, Tuple[int, ...]]
    codec: str = "none"
    codec_options: dict = field(default_factory=dict)
    accepted: frozenset = frozenset()  # (client_id, base version) already accepted
    sampled: Optional[frozenset] = None  # None: any client may contribute
    max_bytes: int = 256 * 1024 * 1024
    max_norm: Optional[float] = None
    max_examples: int = 10 ** 9
    client_max_examples: Dict[str, int] = field(default_factory=dict)  # declared counts
    async_mode: bool = False
    keyring: Optional[object] = None  # signing.Keyring: when set, every update must be signed


@dataclass
class Verdict:
    ok: bool
    reason: str = ""
    client_id: str = ""
    round: int = -1
    num_examples: int = 0
    staleness: int = 0
    tensors: Optional[dict] = None
    metrics: dict = field(default_factory=dict)
    undo: Optional[Callable[[], None]] = None  # takes a folded update out of the fold again
    resend: bool = False  # the agent says this is a resend (params["resend"])


def _reject(code, detail, **kw):
    return Verdict(False, "{}: {}".format(code, detail), **kw)


def _schema_problem(check, value):
    """The WireError text of ``check(value)``, or None when the value passes."""
    try:
        check(value)
    except WireError as exc:
        return exc.detail
    return None


def _check_fields(msg, exp, topic_client):
    """Reason string for the first bad header field, or None."""
    bad_metrics = _schema_problem(update_metrics, msg.metrics)
    bad_params = _schema_problem(update_params, msg.params)
    checks = [
        (msg.kind != "update", "kind", "expected an update, got {!r}".format(msg.kind[:40])),
        (msg.federation != exp.federation, "federation",
         "{!r} is not {!r}".format(msg.federation[:60], exp.federation)),
        (not msg.client_id, "client-id", "empty client id"),
        (topic_client is not None and msg.client_id != topic_client, "client-id",
         "message says {!r} but was sent on {!r}'s topic".format(msg.client_id[:60],
                                                                 (topic_client or "")[:60])),
        (exp.sampled is not None and msg.client_id not in exp.sampled, "not-sampled",
         "{!r} is not in round {}'s sample".format(msg.client_id[:60], exp.round)),
        # sync: a late update is named for what it is (stale) before its base model is checked
        (not exp.async_mode and msg.round < exp.round, "stale-round",
         "update for round {}, current round is {}".format(msg.round, exp.round)),
        (msg.base_digest not in exp.versions, "base-digest",
         "base model {}... is not a model this aggregator can accept".format(
             msg.base_digest[:12])),
        # FedAvg weighs by the claim: no client outweighs what it declared at `federation init`
        (msg.num_examples > exp.client_max_examples.get(msg.client_id, msg.num_examples),
         "weight-bound", "{!r} claims {} examples, it declared at most {}".format(
             msg.client_id[:60], msg.num_examples, exp.client_max_examples.get(msg.client_id))),
        (not 0 < msg.num_examples <= exp.max_examples, "num-examples",
         "{} outside 1..{}".format(msg.num_examples, exp.max_examples)),
        (msg.encoding != exp.codec, "encoding",
         "{!r}, this round expects {!r}".format(msg.encoding[:40], exp.codec)),
        (bad_metrics is not None, "metrics", bad_metrics),
        (bad_params is not None, "params", bad_params),
    ]
    for bad, code, detail in checks:
        if bad:
            return "{}: {}".format(code, detail)
    version = exp.versions[msg.base_digest]
    if not exp.async_mode and msg.round != exp.round:
        return "{}: update for round {}, current round is {}".format(
            "stale-round" if msg.round < exp.round else "future-round", msg.round, exp.round)
    if exp.async_mode and msg.round != version:
        return "round: update says round {} but its base model is version {}".format(
            msg.round, version)
    if (msg.client_id, version) in exp.accepted:
        return "duplicate: {!r} already contributed to round {}".format(msg.client_id[:60],
                                                                        version)
    return None


def validate_update(payload, exp, topic_client=None, fold=None):
    """Check one update message end to end.

    Args:
        payload: the raw message bytes.
        exp: the aggregator's :class:`Expectation`.
        topic_client: the client id the topic names (identity pinned by the broker ACL).
        fold: folds the update into a running sum where its values are checked, in the same
            pass (``edgefl.runtime.fold``): ``fold(tensors, num_examples, staleness, norm) ->
            (reason or None, undo)``; ``norm`` is the update's L2 norm when it was computed,
            else None. A check that fails after it calls ``undo()``.
    Returns:
        a Verdict; when ``ok`` its ``tensors`` are the decoded float32 deltas (and ``undo``
        takes the update out of the fold again).
    """
    if len(payload) > exp.max_bytes:
        return _reject("too-large", "{} bytes > limit {}".format(len(payload), exp.max_bytes))
    try:
        msg = decode_message(payload, Limits(max_bytes=exp.max_bytes))
    except WireError as exc:
        return _reject("wire", str(exc))
    who = dict(client_id=msg.client_id[:200], round=msg.round)
    reason = _check_fields(msg, exp, topic_client)
    if reason:
        return Verdict(False, reason, **who)
    if msg.encoding not in CODECS:
        return _reject("encoding", "unknown codec {!r}".format(msg.encoding[:40]), **who)
    try:
        codec = make_codec(msg.encoding, **exp.codec_options)
        tensors = codec.decode(msg.tensors, msg.params.get("codec", {}), exp.shapes)
    except (WireError, EdgeRuntimeError) as exc:
        return _reject("codec", str(exc), **who)
    staleness = exp.round - exp.versions[msg.base_digest]
    norm = update_norm(tensors) if exp.max_norm is not None else None
    undo = _nothing
    for n, v in tensors.items() if fold is None else ():
        if not np.all(np.isfinite(v)):
            return _reject("non-finite", "NaN or Inf in {!r}".format(n[:60]), **who)
    # a norm of NaN or Inf: a value is; the fold names it (float64 squares of float32 values
    # never overflow)
    if norm is not None and np.isfinite(norm) and norm > exp.max_norm:
        return _reject("norm-bound", "update norm {:.4g} > bound {:.4g}".format(
            norm, exp.max_norm), **who)
    if fold is not None:
        reason, undo = fold(tensors, msg.num_examples, staleness, norm)
        if reason:
            return Verdict(False, reason, **who)
    if exp.keyring is not None:  # last, so a malformed update is reported for what is wrong
        bad_signature = verify_message(exp.keyring, msg)
        if bad_signature:
            undo()
            return _reject("signature", bad_signature, **who)
    return Verdict(True, "", client_id=msg.client_id, round=msg.round,
                   num_examples=msg.num_examples, staleness=staleness,
                   tensors=tensors, metrics=update_metrics(msg.metrics), undo=undo,
                   resend=msg.params.get("resend") is True)


def _nothing():
    return None
