"""Optional HMAC-SHA256 signatures on federated updates (edge code: Python 3.6, stdlib + numpy).

For brokers the federation does not control: each client holds its own secret key, the
aggregator holds all of them (a keyring) and refuses an update whose signature does not match
the key of the client it claims to come from.

What is signed is a canonical form of the message that does not depend on how the header JSON
was laid out: the metadata (every field except ``signature``) as sorted compact JSON, then each
tensor sorted by name as ``name, dtype, shape, raw little-endian bytes``, each part length-prefixed
so two different messages can never hash the same bytes. The hex MAC travels in the message
metadata under ``signature``.

On a :class:`edgefl.runtime.wire.Message` the MAC travels in ``msg.params["signature"]`` and
covers every typed field (kind, federation, round, client id, base digest, example count,
encoding, metrics, the other params, schema) and every tensor.

Usage::

    sign_message(key, msg)                    # agent, before encode_message(msg)
    reason = verify_message(keyring, msg)     # aggregator, after decode; None when valid
"""

import binascii
import hashlib
import hmac
import json
import os
import struct

SIGNATURE_FIELD = "signature"
KEY_BYTES = 32

__all__ = [
    "SIGNATURE_FIELD",
    "Keyring",
    "SigningTransport",
    "canonical_bytes",
    "generate_key",
    "key_from_hex",
    "mac_hex",
    "message_fields",
    "sign_message",
    "sign_metadata",
    "verify_message",
    "verify_metadata",
]

_MESSAGE_FIELDS = (
    "kind",
    "federation",
    "round",
    "client_id",
    "base_digest",
    "num_examples",
    "encoding",
    "metrics",
    "schema",
)


def generate_key():
    """A fresh random 32-byte key, as hex text (what config files store)."""
    return binascii.hexlify(os.urandom(KEY_BYTES)).decode("ascii")


def key_from_hex(text):
    """Key bytes from hex text; raises ValueError with the fix when it is not a valid key."""
    try:
        key = binascii.unhexlify(text.strip())
    except (binascii.Error, AttributeError, TypeError):
        raise ValueError("signing key is not hex text — use the key written by `edgefl federation init`")
    if len(key) < 16:
        raise ValueError(
            "signing key is %d bytes, need at least 16 — generate one with generate_key()" % len(key)
        )
    return key


def _part(data):
    return struct.pack("<Q", len(data)) + data


def _tensor_parts(name, array):
    import numpy as np  # edge stack has numpy; imported here so signing of metadata alone needs none

    arr = np.ascontiguousarray(array)
    dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    arr = arr.astype(dtype, copy=False)
    shape = json.dumps([int(d) for d in arr.shape], separators=(",", ":")).encode("ascii")
    return (
        _part(name.encode("utf-8")) + _part(dtype.str.encode("ascii")) + _part(shape) + _part(arr.tobytes())
    )


def canonical_bytes(metadata, arrays):
    """The bytes a signature covers.

    Args:
        metadata: dict of message fields (``signature`` is left out if present).
        arrays: dict name -> numpy array (the message tensors).

    Returns:
        bytes, identical for the same fields and tensors however the message was encoded.
    """
    fields = dict((k, v) for k, v in metadata.items() if k != SIGNATURE_FIELD)
    head = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    parts = [b"edgefl-sig-v1", _part(head)]
    for name in sorted(arrays):
        parts.append(_tensor_parts(name, arrays[name]))
    return b"".join(parts)


def mac_hex(key, metadata, arrays):
    """HMAC-SHA256 of the canonical form, hex."""
    return hmac.new(key, canonical_bytes(metadata, arrays), hashlib.sha256).hexdigest()


def sign_metadata(key, metadata, arrays):
    """A copy of ``metadata`` with ``signature`` set for these tensors."""
    signed = dict(metadata)
    signed[SIGNATURE_FIELD] = mac_hex(key, metadata, arrays)
    return signed


class Keyring(object):
    """Per-client keys held by the aggregator: client id -> key bytes."""

    def __init__(self, keys):
        self._keys = dict(keys)

    @classmethod
    def from_hex(cls, mapping):
        """From {client_id: hex key} (the JSON an `edgefl federation init` writes)."""
        return cls(dict((cid, key_from_hex(h)) for cid, h in mapping.items()))

    @classmethod
    def from_file(cls, path):
        """From a keyring JSON file ({"keys": {client_id: hex}}); EdgeRuntimeError if unusable."""
        from edgefl.runtime.errors import EdgeRuntimeError

        try:
            with open(path, "r") as fh:
                data = json.load(fh)
            return cls.from_hex(data.get("keys", data))
        except (IOError, OSError, ValueError, AttributeError) as exc:
            raise EdgeRuntimeError(
                "cannot use signing keyring {} ({}) — pass the keyring.json written by "
                "`edgefl federation init`".format(path, exc)
            )

    def key_for(self, client_id):
        return self._keys.get(client_id)

    def __contains__(self, client_id):
        return client_id in self._keys

    def __len__(self):
        return len(self._keys)


def verify_metadata(keyring, metadata, arrays, client_id=None):
    """Check an update's signature against its client's key (constant-time compare).

    Args:
        keyring: Keyring with the federation's client keys.
        metadata: the message fields (must hold ``signature``).
        arrays: the message tensors.
        client_id: whose key to use; defaults to ``metadata["client_id"]``.

    Returns:
        None when the signature is valid, else a short reason string.
    """
    cid = client_id if client_id is not None else metadata.get("client_id")
    key = keyring.key_for(cid)
    if key is None:
        return "no signing key for client %r" % (cid,)
    sig = metadata.get(SIGNATURE_FIELD)
    if not isinstance(sig, str) or not sig:
        return "update is not signed"
    expected = mac_hex(key, metadata, arrays)
    if not hmac.compare_digest(expected.encode("ascii"), sig.encode("ascii", "replace")):
        return "bad signature"
    return None


def message_fields(msg):
    """The fields of a wire Message that its signature covers (all but the signature)."""
    fields = dict((name, getattr(msg, name)) for name in _MESSAGE_FIELDS)
    fields["params"] = dict((k, v) for k, v in msg.params.items() if k != SIGNATURE_FIELD)
    return fields


def sign_message(key, msg):
    """Set ``msg.params["signature"]`` to the MAC of the message's fields and tensors.

    Args:
        key: the client's key bytes (``key_from_hex`` of its config entry).
        msg: a wire Message (modified in place and returned).
    """
    msg.params[SIGNATURE_FIELD] = mac_hex(key, message_fields(msg), msg.tensors)
    return msg


def verify_message(keyring, msg):
    """Check a decoded Message's signature against the key of ``msg.client_id``.

    Returns:
        None when valid, else a short reason ("update is not signed", "bad signature", ...).
    """
    fields = message_fields(msg)
    fields[SIGNATURE_FIELD] = msg.params.get(SIGNATURE_FIELD)
    return verify_metadata(keyring, fields, msg.tensors, client_id=msg.client_id)


class SigningTransport(object):
    """Wraps a transport (see ``edgefl.runtime.transport.Transport``) and signs every update
    message it publishes with the client's key; everything else passes through unchanged.

    Put it outside the chunking layer so the whole message is signed once::

        transport = SigningTransport(make_transport(client_id, mqtt), key_from_hex(cfg_key))
    """

    def __init__(self, inner, key):
        self.inner, self.key = inner, key
        self.client_id = getattr(inner, "client_id", "")

    def publish(self, topic, payload, qos=1, retain=False):
        from edgefl.runtime.errors import WireError
        from edgefl.runtime.wire import decode_message, encode_message

        try:
            msg = decode_message(payload)
        except WireError:
            msg = None
        if msg is not None and msg.kind == "update":
            payload = encode_message(sign_message(self.key, msg))
        return self.inner.publish(topic, payload, qos, retain)

    def __getattr__(self, name):  # connect, subscribe, poll, flush, close, last_error ...
        return getattr(self.inner, name)
