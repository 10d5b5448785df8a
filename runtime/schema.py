"""The wire schema: every header and metadata field is checked by type and range before use.

A message's fields arrive as JSON (the safetensors header) and as strings inside it
(``__metadata__``). Nothing here trusts Python's notion of a digit or of a number: integers are
ASCII digits within bounds (``str.isdigit`` accepts superscripts and other scripts' numerals,
``int`` accepts some of those), dtypes are known codes, shapes are short lists of non-negative
ints whose element count and byte length are checked (zero dimensions included), metrics are
finite numbers under a size cap, strings are length-capped UTF-8. Every failure is a
:class:`WireError`; the checks are pure functions so a property test can drive each one.
"""

import json
import math
import re
from collections import OrderedDict

import numpy as np

from edgefl.runtime.errors import WireError

__all__ = ["DTYPES", "INBOUND_PARAMS", "MESSAGE_FIELDS", "PARAM_DEFAULTS", "ascii_int",
           "lean_params", "metadata_map", "message_fields", "model_problem", "options",
           "params_problem", "tensor_entry", "text", "update_metrics", "update_params"]

# safetensors dtype code -> numpy dtype (explicit little-endian). BF16 has no numpy dtype.
DTYPES = OrderedDict([
    ("F64", "<f8"), ("F32", "<f4"), ("F16", "<f2"),
    ("I64", "<i8"), ("I32", "<i4"), ("I16", "<i2"), ("I8", "|i1"),
    ("U64", "<u8"), ("U32", "<u4"), ("U16", "<u2"), ("U8", "|u1"), ("BOOL", "|b1"),
])
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
            "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}

MAX_NAME = 1024  # tensor names
MAX_ID = 256  # federation, client id, digest
MAX_KEY = 128  # metadata and metric keys
MAX_METADATA_KEYS = 64
MAX_METRICS = 64
MAX_INT_METRIC = 2 ** 53  # larger ints do not survive the float sums of the round summary
MAX_OPTIONS = 64  # entries of a train or codec options object
MAX_OPTION_TEXT = 256  # a string option
MAX_SAMPLED = 100000  # client ids in a round's sample
MAX_REASON = 4096  # a status's reason
_ASCII_INT = re.compile(r"\A[0-9]{1,18}\Z")  # \Z, not $: "$" also matches before a final "\n"


def _short(value):
    return repr(value)[:40]


def text(value, what, cap):
    """``value`` when it is a str of at most ``cap`` characters that UTF-8 can encode."""
    if not isinstance(value, str):
        raise WireError("bad-metadata", "{} must be a string, got {}".format(
            what, type(value).__name__))
    if len(value) > cap:
        raise WireError("bad-metadata", "{} is {} characters, limit {}".format(
            what, len(value), cap))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from JSON "\ud800" escapes
        raise WireError("bad-metadata", "{} is not valid UTF-8 text".format(what))
    return value


def ascii_int(value, what, lo, hi):
    """The int written as ASCII digits in ``value`` (a str), within ``lo..hi``."""
    if not isinstance(value, str) or not _ASCII_INT.match(value):
        raise WireError("bad-metadata", "{} must be ASCII digits, got {}".format(
            what, _short(value)))
    n = int(value)
    if not lo <= n <= hi:
        raise WireError("bad-metadata", "{} is {}, outside {}..{}".format(what, n, lo, hi))
    return n


def _json_object(value, what, cap):
    text(value, what, cap)
    try:
        obj = json.loads(value)
    except (ValueError, RecursionError):
        raise WireError("bad-metadata", "{} is not JSON".format(what))
    if not isinstance(obj, dict):
        raise WireError("bad-metadata", "{} is not a JSON object".format(what))
    return obj


def metadata_map(meta, max_value):
    """Check ``__metadata__``: a JSON object of at most 64 str -> str entries."""
    if not isinstance(meta, dict):
        raise WireError("bad-metadata", "__metadata__ must map str to str")
    if len(meta) > MAX_METADATA_KEYS:
        raise WireError("bad-metadata", "{} metadata entries, limit {}".format(
            len(meta), MAX_METADATA_KEYS))
    for k, v in meta.items():
        text(k, "metadata key", MAX_KEY)
        if not isinstance(v, str):
            raise WireError("bad-metadata", "__metadata__ must map str to str")
        text(v, "metadata {!r}".format(k[:40]), max_value)
    return meta


# field -> (parse(text, what, max_value), default text). Unknown metadata keys are ignored so
# that newer writers can add fields; every field read here is typed and bounded. An absent field
# reads as its default text, and writers leave out a field at its default (``wire.encode_message``).
MESSAGE_FIELDS = OrderedDict([
    ("kind", (lambda v, w, m: text(v, w, 16), "")),
    ("federation", (lambda v, w, m: text(v, w, MAX_ID), "")),
    ("round", (lambda v, w, m: ascii_int(v, w, 0, 2 ** 31 - 1), "0")),
    ("client_id", (lambda v, w, m: text(v, w, MAX_ID), "")),
    ("base_digest", (lambda v, w, m: text(v, w, MAX_ID), "")),
    ("num_examples", (lambda v, w, m: ascii_int(v, w, 0, 2 ** 53), "0")),
    ("encoding", (lambda v, w, m: text(v, w, 32), "")),
    ("metrics", (_json_object, "{}")),
    ("params", (_json_object, "{}")),
])


def message_fields(meta, max_value):
    """The typed message fields of a checked ``__metadata__`` (see MESSAGE_FIELDS)."""
    return OrderedDict((name, parse(meta.get(name, default), name, max_value))
                       for name, (parse, default) in MESSAGE_FIELDS.items())


def _dims(shape, what, max_dims):
    if not isinstance(shape, list) or len(shape) > max_dims:
        raise WireError("bad-shape", "{}: shape must be a list of at most {} ints".format(
            what, max_dims))
    for s in shape:
        if type(s) is not int or s < 0:  # type(): JSON true is a bool, and bool is an int
            raise WireError("bad-shape", "{}: dimension {} is not a non-negative int".format(
                what, _short(s)))
    return shape


def _offsets(offs, what, max_bytes):
    if (not isinstance(offs, list) or len(offs) != 2
            or not all(type(o) is int and 0 <= o <= max_bytes for o in offs)
            or offs[0] > offs[1]):
        raise WireError("bad-offsets", what)
    return offs


def tensor_entry(name, entry, limits):
    """``(dtype code, shape, offsets)`` of one header entry, every part checked.

    The element count is checked twice: against the byte range, and with zero dimensions
    counted as one against ``limits.max_bytes``, so a zero-sized shape cannot carry dimensions
    no array could have (numpy refuses to reshape to those).
    """
    what = text(name, "tensor name", MAX_NAME)[:80]
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise WireError("bad-tensor-entry", what)
    code, shape, offs = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(code, str) or code not in DTYPES:
        raise WireError("unsupported-dtype", "{} for {}".format(_short(code), what))
    _dims(shape, what, limits.max_dims)
    _offsets(offs, what, limits.max_bytes)
    itemsize = ITEMSIZE[code]
    count, nonzero = 1, itemsize
    for s in shape:
        count *= s
        nonzero *= max(s, 1)
        if nonzero > limits.max_bytes:
            raise WireError("bad-shape", "{}: shape {} cannot fit {} bytes".format(
                what, _short(shape), limits.max_bytes))
    if count * itemsize != offs[1] - offs[0]:
        raise WireError("size-mismatch", "{}: shape {} vs {} bytes".format(
            what, _short(shape), offs[1] - offs[0]))
    return code, shape, offs


def _finite_number(v):
    """A JSON number that is a finite float or an int within 2**53 (never a bool)."""
    return (type(v) is float and math.isfinite(v)) or (type(v) is int and abs(v) <= MAX_INT_METRIC)


def update_metrics(metrics):
    """An update's metrics as ``{name: float}``: a flat object of at most 64 finite numbers
    (booleans, strings, null, lists, objects and ints beyond 2**53 are refused)."""
    if not isinstance(metrics, dict) or len(metrics) > MAX_METRICS:
        raise WireError("bad-metrics", "metrics must be an object of at most {} numbers".format(
            MAX_METRICS))
    out = OrderedDict()
    for k in sorted(metrics):
        v = metrics[k]
        text(k, "metric name", MAX_KEY)
        if not _finite_number(v):
            raise WireError("bad-metrics", "metric {!r} must be a finite number, got {}".format(
                k[:40], _short(v)))
        out[k] = float(v)
    return out


def update_params(params):
    """An update's params: ``codec`` (options the codec sent) must be an object."""
    if not isinstance(params.get("codec", {}), dict):
        raise WireError("bad-params", "params.codec must be an object, got {}".format(
            _short(params.get("codec"))))
    return params


# --- what an agent reads: the params of round announcements and status messages -----------------

def _bad(what, expected, value):
    return WireError("bad-params", "params.{} must be {}, got {}".format(what, expected, _short(value)))


def _boolean(value, what):
    if type(value) is not bool:
        raise _bad(what, "true or false", value)
    return value


def _count(value, what):
    if type(value) is not int or not 0 <= value <= MAX_INT_METRIC:
        raise _bad(what, "a non-negative integer", value)
    return value


def _number(value, what):
    if not _finite_number(value):
        raise _bad(what, "a finite number", value)
    return value


def _object(value, what):
    if not isinstance(value, dict):
        raise _bad(what, "an object", value)
    return value


def _id_list(value, what):
    if not isinstance(value, list) or len(value) > MAX_SAMPLED:
        raise _bad(what, "a list of at most {} client ids".format(MAX_SAMPLED), value)
    for v in value:
        text(v, "params.{} entry".format(what), MAX_ID)
    return value


def options(value, what):
    """A flat options object (a round's ``train``, a codec's options): at most 64 entries, each
    a finite number, true/false, null or a string of at most 256 characters."""
    if not isinstance(value, dict) or len(value) > MAX_OPTIONS:
        raise _bad(what, "an object of at most {} options".format(MAX_OPTIONS), value)
    for k, v in value.items():
        text(k, "params.{} key".format(what), MAX_KEY)
        if v is None or type(v) is bool or _finite_number(v):
            continue
        if not isinstance(v, str):
            raise _bad("{}.{}".format(what, k[:40]), "a finite number, a string or null", v)
        text(v, "params.{}.{}".format(what, k[:40]), MAX_OPTION_TEXT)
    return value


def _delta(value, what):
    """A coded delta's object: its codec options, when an object, are options; the types of
    its fields, digests and rounds are ``downlink.delta_problem``'s to check."""
    if isinstance(value, dict) and isinstance(value.get("options"), dict):
        options(value["options"], what + ".options")
    return value


def _optional(check):
    return lambda value, what: None if value is None else check(value, what)


def _short_text(cap):
    return lambda value, what: text(value, "params." + what, cap)


# kind -> param -> check(value, name). An absent param is not checked (the reader's default
# applies); unknown params are ignored, as unknown metadata keys are.
INBOUND_PARAMS = {
    "round": OrderedDict([
        ("mode", _short_text(16)),
        ("codec", _short_text(32)),
        ("codec_options", options),
        ("sampled", _optional(_id_list)),
        ("deadline", _optional(_number)),
        ("train", options),
        ("final", _boolean),
        ("epoch", _optional(_count)),
        ("signature", _optional(_short_text(MAX_KEY * 2))),
        ("delta", _optional(_delta)),
    ]),
    "status": OrderedDict([
        ("accepted", _boolean),
        ("reason", _short_text(MAX_REASON)),
        ("current_round", _count),
    ]),
}


# kind -> param -> the value a reader takes for an absent param. Writers leave out a param at its
# default (``lean_params``): every byte a satellite receives costs contact time. A round without
# ``sampled`` is open to every client the aggregator accepts (its own check still names them);
# a status without ``current_round`` was sent in the round it answers (``round``).
PARAM_DEFAULTS = {
    "round": OrderedDict([("mode", "sync"), ("codec", "none"), ("codec_options", {}),
                          ("sampled", None), ("train", {}), ("final", False)]),
    "status": OrderedDict([("reason", "")]),
}


def lean_params(kind, params):
    """``params`` without the entries at the reader's default (PARAM_DEFAULTS); a new dict."""
    defaults = PARAM_DEFAULTS.get(kind, {})
    return OrderedDict((k, v) for k, v in params.items()
                       if not (k in defaults and _same(v, defaults[k])))


def _same(value, default):
    """Equal, and a bool only to a bool (0 == False in Python, not on the wire)."""
    return value == default and (type(value) is bool) == (type(default) is bool)


def params_problem(kind, params):
    """Why the params of an inbound ``kind`` message (see INBOUND_PARAMS) are unusable, as
    ``"bad-params: detail"``; None when every one is well typed and bounded."""
    for name, check in INBOUND_PARAMS.get(kind, {}).items():
        if name in params:
            try:
                check(params[name], name)
            except WireError as exc:
                return "bad-params: " + exc.detail
    return None


def model_problem(held, tensors):
    """Why ``tensors`` (an announced global model) cannot replace the model ``held`` (None: no
    model yet), or None: every tensor float32 and finite, with the held model's names and shapes."""
    for name, v in tensors.items():
        if v.dtype != np.float32 or not np.all(np.isfinite(v)):
            return "model: {} must be finite float32, got {}".format(name[:80], v.dtype)
    if held is not None and [(n, np.shape(v)) for n, v in sorted(held.items())] != \
            [(n, np.shape(v)) for n, v in sorted(tensors.items())]:
        return "model: the announced tensors' names or shapes differ from this client's model"
    return None
