"""Safetensors-format messages written and read with numpy alone.

Layout (the safetensors format): 8-byte little-endian header length N, N bytes of JSON header,
then the raw little-endian tensor bytes. The header maps tensor names to
``{"dtype", "shape", "data_offsets"}`` and holds ``__metadata__`` (string -> string) with the
message fields. The ``safetensors`` library reads what :func:`encode_message` writes, and
:func:`decode_message` reads what the library writes.

The reader is strict and bounded: every failure is a :class:`WireError` with a short reason;
nothing from the network is ever unpickled.
"""

import hashlib
import json
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
import numpy as np

from edgefl.runtime import SCHEMA_VERSION
from edgefl.runtime.errors import WireError
from edgefl.runtime.schema import DTYPES, MESSAGE_FIELDS, message_fields, metadata_map, tensor_entry

__all__ = [
    "Message",
    "Limits",
    "encode_message",
    "decode_message",
    "encode_tensors",
    "tensor_chunks",
    "decode_tensors",
    "model_digest",
    "payload_digest",
]

_CODE_FROM_DTYPE = {np.dtype(v).str: k for k, v in DTYPES.items()}

_META_FIELDS = ("round", "client_id", "base_digest", "num_examples", "encoding")
# written only when not at the reader's default (kind and federation always are)
_DEFAULTED = _META_FIELDS + ("metrics", "params")


@dataclass
class Limits:
    """Bounds the reader enforces before allocating anything."""

    max_bytes: int = 512 * 1024 * 1024
    max_header_bytes: int = 4 * 1024 * 1024
    max_tensors: int = 10000
    max_dims: int = 8
    max_metadata_value: int = 1024 * 1024


DEFAULT_LIMITS = Limits()


@dataclass
class Message:
    """One wire message: typed fields plus named numpy tensors.

    ``kind`` is "round" (announcement + global model), "update" (a client's encoded update) or
    "status" (aggregator -> client verdict). ``metrics`` and ``params`` are JSON objects.
    """

    kind: str
    federation: str
    round: int = 0
    client_id: str = ""
    base_digest: str = ""
    num_examples: int = 0
    encoding: str = "none"
    metrics: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    tensors: "OrderedDict[str, np.ndarray]" = field(default_factory=OrderedDict)
    schema: int = SCHEMA_VERSION


def _dtype_code(arr):
    code = _CODE_FROM_DTYPE.get(arr.dtype.newbyteorder("<").str if arr.dtype.byteorder == ">"
                                else arr.dtype.str)
    if code is None:
        raise WireError("unsupported-dtype", str(arr.dtype))
    return code


def encode_tensors(tensors, metadata=None):
    """Serialise ``{name: ndarray}`` plus string metadata to safetensors bytes.

    Args:
        tensors: mapping of name -> numpy array (any supported dtype; written little-endian).
        metadata: mapping of str -> str stored as ``__metadata__``.
    Returns:
        bytes in the safetensors format.
    """
    return b"".join(tensor_chunks(tensors, metadata))


def tensor_chunks(tensors, metadata=None):
    """``encode_tensors``'s bytes as a list of chunks: the length and header, then each tensor's
    data as a view of its array where it is already contiguous little-endian (no copy), so a
    file can be written chunk by chunk and a message joined with one copy."""
    header = OrderedDict()
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise WireError("bad-metadata", "metadata keys and values must be str")
        header["__metadata__"] = OrderedDict(sorted(metadata.items()))
    chunks = []
    offset = 0
    for name in sorted(tensors):  # sorted: byte-identical output for the same content
        arr = np.asarray(tensors[name])
        code = _dtype_code(arr)
        flat = np.ascontiguousarray(arr, dtype=np.dtype(DTYPES[code])).reshape(-1)
        data = memoryview(flat.view(np.uint8)) if flat.size else b""
        header[name] = OrderedDict([("dtype", code), ("shape", [int(s) for s in arr.shape]),
                                    ("data_offsets", [offset, offset + flat.nbytes])])
        chunks.append(data)
        offset += flat.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # align tensor data to 8 bytes, as safetensors does
    return [struct.pack("<Q", len(raw)) + raw] + chunks


def _no_duplicates(pairs):
    out = OrderedDict()
    for k, v in pairs:
        if k in out:
            raise WireError("duplicate-key", repr(k)[:80])
        out[k] = v
    return out


def _parse_header(buf, limits):
    if len(buf) < 8:
        raise WireError("truncated", "shorter than the 8-byte header length")
    if len(buf) > limits.max_bytes:
        raise WireError("too-large", "{} bytes > limit {}".format(len(buf), limits.max_bytes))
    (n,) = struct.unpack("<Q", bytes(buf[:8]))
    if n > limits.max_header_bytes:
        raise WireError("header-too-large", "{} bytes".format(n))
    if n + 8 > len(buf):
        raise WireError("truncated", "header length {} beyond message end".format(n))
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except WireError:
        raise
    except (ValueError, RecursionError) as exc:
        raise WireError("bad-header-json", str(exc)[:120])
    if not isinstance(header, dict):
        raise WireError("bad-header", "header is not a JSON object")
    return header, 8 + n


def decode_tensors(buf, limits=DEFAULT_LIMITS):
    """Parse safetensors bytes into ``(OrderedDict name -> ndarray, metadata dict)``.

    Arrays are read-only views into ``buf``. Raises WireError on any inconsistency.
    """
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise WireError("bad-type", type(buf).__name__)
    buf = memoryview(buf).cast("B") if isinstance(buf, memoryview) else memoryview(buf)
    header, start = _parse_header(buf, limits)
    meta = metadata_map(header.pop("__metadata__", {}), limits.max_metadata_value)
    if len(header) > limits.max_tensors:
        raise WireError("too-many-tensors", str(len(header)))
    entries = [(name,) + tensor_entry(name, e, limits) for name, e in header.items()]
    # safetensors requires the byte ranges to tile the data section exactly.
    expect = 0
    for name, _, _, offs in sorted(entries, key=lambda e: (e[3][0], e[3][1])):
        if offs[0] != expect:
            raise WireError("bad-offsets", "gap or overlap at {}".format(name[:80]))
        expect = offs[1]
    if start + expect != len(buf):
        raise WireError("size-mismatch", "data section is {} bytes, header says {}".format(
            len(buf) - start, expect))
    tensors = OrderedDict()
    for name, dtype, shape, offs in entries:
        arr = np.frombuffer(buf, dtype=np.dtype(DTYPES[dtype]), count=(offs[1] - offs[0]) //
                            np.dtype(DTYPES[dtype]).itemsize, offset=start + offs[0])
        tensors[name] = arr.reshape(shape)
    return tensors, meta


def encode_message(msg):
    """Serialise a :class:`Message` to bytes.

    Lean on the wire: ``metrics`` and ``params`` are compact JSON, and a field whose text equals
    the default every reader fills in for an absent one (``schema.MESSAGE_FIELDS``: empty client
    id and digest, no examples, round 0, empty metrics and params) is left out, so
    ``decode_message`` gives back the same fields either way and old readers read it too.
    ``kind``, ``federation`` and the schema version are always written.
    """
    meta = {"edgefl.schema": str(int(msg.schema)), "kind": str(msg.kind),
            "federation": str(msg.federation)}
    for f in _META_FIELDS:
        meta[f] = str(getattr(msg, f))
    meta["metrics"] = json.dumps(msg.metrics, sort_keys=True, separators=(",", ":"))
    meta["params"] = json.dumps(msg.params, sort_keys=True, separators=(",", ":"))
    for f in _DEFAULTED:
        if meta[f] == MESSAGE_FIELDS[f][1]:
            del meta[f]
    return encode_tensors(msg.tensors, meta)


def decode_message(buf, limits=DEFAULT_LIMITS):
    """Parse bytes into a :class:`Message`; raises WireError with a reason on anything odd.

    Every field is checked by type and range first (``edgefl.runtime.schema``).
    """
    tensors, meta = decode_tensors(buf, limits)
    if "edgefl.schema" not in meta:
        raise WireError("not-edgefl", "no edgefl.schema in __metadata__")
    schema = meta["edgefl.schema"]
    if schema != str(SCHEMA_VERSION):
        raise WireError("schema-version", "got {!r}, expected {}".format(schema[:20],
                                                                        SCHEMA_VERSION))
    fields = message_fields(meta, limits.max_metadata_value)
    return Message(tensors=tensors, schema=SCHEMA_VERSION, **fields)


def payload_digest(payload):
    """sha256 (hex) of a message's bytes: its identity in logs and in the poison quarantine."""
    return hashlib.sha256(payload).hexdigest()


def model_digest(tensors):
    """sha256 over names, dtypes, shapes and canonical (C-order, little-endian) bytes."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        code = _dtype_code(arr)
        h.update(json.dumps([name, code, [int(s) for s in arr.shape]]).encode("utf-8"))
        # the array's own buffer, as bytes: no model-sized copy
        h.update(np.ascontiguousarray(arr, dtype=np.dtype(DTYPES[code])).reshape(-1).view(np.uint8))
    return h.hexdigest()


def as_float32(tensors, names=None):
    """Copy tensors into writable float32 arrays (in ``names`` order when given)."""
    names = sorted(tensors) if names is None else names
    return OrderedDict((n, np.array(tensors[n], dtype=np.float32)) for n in names)
