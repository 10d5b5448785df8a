"""Compressed round announcements: the new global model as a coded delta (edge code, numpy only).

With a downlink codec other than ``none`` the aggregator announces round r not as the full fp32
model but as ``C(G - R)``: the difference between its own model G (where the aggregated updates
go) and the reference copy R every client holds, coded by one of the update codecs
(``edgefl.runtime.codecs``: int8 per channel, top-k, FedFQ, ...). Server and clients then both
compute ``R <- R + decode(C(G - R))`` with the same function (:func:`reconstruct`), so every
client holds the bit-identical model, and the announced digest is that model's. Whatever the code
did not carry stays in ``G - R`` and goes out with the next delta: error feedback on the server.

A delta names the model it applies to (``from_round``, ``from_digest``): a client whose model has
another digest (it missed a version, joined late, lost its state) loads the full snapshot the
aggregator keeps retained on ``edgefl/{federation}/snapshot`` instead.

Wire: a delta announcement is a ``round`` message whose ``encoding`` is the codec, whose tensors
are the coded delta and whose ``params["delta"]`` holds ``from_round``, ``from_digest``,
``options`` (the codec's), ``codec_params`` and ``digest`` (``wire.model_digest`` of the coded
tensors). Every one of these is signed with the announcement (``edgefl.runtime.announce``), and
``base_digest`` is the digest of the reconstructed model, so the agent checks the coded tensors
before it decodes them and the model it rebuilt before it trains on it.
"""

from collections import OrderedDict

import numpy as np

from edgefl.runtime.codecs import CODECS, make_codec
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.wire import model_digest

__all__ = ["DELTA_FIELD", "DownlinkCoder", "apply_announcement", "delta_fields", "delta_problem",
           "reconstruct", "tensors_problem"]

DELTA_FIELD = "delta"
_DIGEST_CHARS = frozenset("0123456789abcdef")


def reconstruct(reference, codec, options, tensors, codec_params):
    """``reference + decode(tensors)`` in float32: what every client and the server compute.

    Args:
        reference: the model the delta applies to (name -> float32 array).
        codec: the codec's registry name; ``options`` its options; ``tensors`` and
            ``codec_params`` the coded delta as it travels.
    Returns:
        a new OrderedDict name -> float32 array (``reference`` is not modified).
    Raises:
        EdgeRuntimeError (CodecError for a malformed delta).
    """
    shapes = OrderedDict((n, np.shape(v)) for n, v in reference.items())
    decoded = make_codec(codec, **options).decode(tensors, codec_params, shapes)
    return OrderedDict((n, np.add(np.asarray(reference[n], np.float32),
                                  np.asarray(decoded[n], np.float32), dtype=np.float32))
                       for n in shapes)


class DownlinkCoder(object):
    """The aggregator's side: codes ``G - R`` and advances the reference R (pure).

    Args:
        codec: a registry name (``none``: full models, no delta).
        options: the codec's options.
        seed: seeds the codec's randomness per round (stochastic rounding, annealing).
    """

    def __init__(self, codec="none", options=None, seed=0):
        self.codec, self.options, self.seed = codec, dict(options or {}), int(seed)
        self._coder = make_codec(codec, **self.options)

    @property
    def full(self):
        """True when announcements carry the full model (codec ``none``)."""
        return self.codec == "none"

    def step(self, reference, target, round_):
        """Code ``target - reference`` for the announcement of ``round_``.

        Returns:
            (tensors, codec_params, new_reference): the coded delta and the model every client
            reconstructs from it (``reconstruct(reference, ...)``, the same call they make).
        """
        delta = OrderedDict((n, (np.asarray(target[n], np.float64) - reference[n])
                             .astype(np.float32)) for n in reference)
        rng = np.random.RandomState((self.seed * 1000003 + int(round_) * 7919) % (2 ** 32))
        # a fresh codec state: G - R already carries everything earlier deltas left out
        tensors, params = self._coder.encode(delta, {}, rng)
        return tensors, params, reconstruct(reference, self.codec, self.options, tensors, params)


def delta_fields(from_round, from_digest, options, codec_params, tensors):
    """The ``params["delta"]`` object of a delta announcement."""
    return {"from_round": int(from_round), "from_digest": from_digest, "options": dict(options),
            "codec_params": dict(codec_params), "digest": model_digest(tensors)}


def _is_digest(value):
    return isinstance(value, str) and len(value) == 64 and set(value) <= _DIGEST_CHARS


def delta_problem(msg):
    """Why a round message's ``delta`` object is unusable, or None (also None for a full model)."""
    d = msg.params.get(DELTA_FIELD)
    if d is None:
        return None
    if not isinstance(d, dict):
        return "params.delta must be an object"
    checks = [
        (msg.encoding not in CODECS or msg.encoding == "none",
         "delta encoding {!r} is not a known codec".format(msg.encoding[:40])),
        (type(d.get("from_round")) is not int or d.get("from_round") < 0,
         "delta from_round must be a non-negative integer"),
        (not _is_digest(d.get("from_digest")), "delta from_digest must be a sha256 hex digest"),
        (not _is_digest(d.get("digest")), "delta digest must be a sha256 hex digest"),
        (not isinstance(d.get("options"), dict), "delta options must be an object"),
        (not isinstance(d.get("codec_params"), dict), "delta codec_params must be an object"),
    ]
    for bad, why in checks:
        if bad:
            return why
    return None


def tensors_problem(msg):
    """None when a round message's tensors match the digest it names for them, else a reason.

    A full model is named by ``base_digest``; a coded delta by ``params.delta.digest`` (its
    reconstruction is checked against ``base_digest`` once it is applied).
    """
    problem = delta_problem(msg)
    if problem:
        return problem
    d = msg.params.get(DELTA_FIELD)
    if d is None:
        return None if model_digest(msg.tensors) == msg.base_digest else \
            "global model does not match its signed digest"
    return None if model_digest(msg.tensors) == d["digest"] else \
        "coded delta does not match its signed digest"


def apply_announcement(model, digest, msg):
    """The model a round message gives a client holding ``model`` (digest ``digest``).

    Returns:
        ("model", tensors) when the message yields the announced model (a full one, or a delta
        applied to ours and checked against ``base_digest``); ("snapshot", reason) when the delta
        is for another model than ours; ("refuse", reason) when it must not be loaded.
    """
    d = msg.params.get(DELTA_FIELD)
    if d is None:
        return "model", OrderedDict((n, np.array(v, np.float32)) for n, v in msg.tensors.items())
    if model is None or d["from_digest"] != digest:
        return "snapshot", "the delta is for round {}'s model {}..., ours is {}".format(
            d["from_round"], d["from_digest"][:12], (digest or "none")[:12])
    try:
        rebuilt = reconstruct(model, msg.encoding, d["options"], msg.tensors, d["codec_params"])
    except (EdgeRuntimeError, ValueError, TypeError, KeyError, IndexError) as exc:
        # a signed delta decodes; these only come from a broken or hostile unsigned one
        return "refuse", "the delta does not decode ({})".format(str(exc)[:200])
    if model_digest(rebuilt) != msg.base_digest:
        return "refuse", "the reconstructed model does not match the signed digest"
    return "model", rebuilt
