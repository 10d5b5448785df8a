"""Ed25519 signatures on round announcements (edge code: Python 3.6, stdlib + numpy).

The aggregator signs every announcement with its private key; each agent verifies it with the
aggregator's public key (``edgefl federation init`` puts it in every client config) before it
loads or trains on the model. A client that holds broker credentials can publish on the round
topic, but it cannot sign.

What is signed: a domain tag, then ``signing.canonical_bytes`` of every typed field of the
announcement — kind, federation, round, base digest, encoding, metrics, params (sampled
clients, deadline, training options, codec, final) and schema — as the wire carries them (the
values go through JSON once, so signer and verifier see the same). The tensors are bound through
the signed base digest (``wire.model_digest``: sha256 over names, dtypes, shapes and bytes),
which :meth:`AnnouncementVerifier.problem` recomputes, so one signature costs the same for any
model size. A coded delta (``edgefl.runtime.downlink``) is bound the same way through the
signed digest of its coded tensors, and the model rebuilt from it through the signed base
digest, which the agent checks before it trains. The round is signed too: the agent refuses a
round older than the one it already loaded, so replaying an old genuine announcement cannot roll
it back.

The signature travels as hex in ``params["signature"]`` (where an update carries its HMAC).

Backends: ``cryptography`` (OpenSSL) where it imports and supports Ed25519, else the pure-Python
``edgefl.runtime.ed25519`` (RFC 8032).
"""

import binascii
import json
import os
from collections import namedtuple

from edgefl.runtime import ed25519
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.signing import SIGNATURE_FIELD, canonical_bytes, message_fields
from edgefl.runtime.downlink import tensors_problem

__all__ = [
    "AnnouncementSigner",
    "AnnouncementVerifier",
    "announcement_bytes",
    "generate_key_pair",
    "load_backend",
]

_TAG = b"edgefl-announcement-ed25519-v1"

Backend = namedtuple("Backend", "name public_key sign verify")


def _python_backend():
    return Backend("python", ed25519.public_key, ed25519.sign, ed25519.verify)


def _cryptography_backend():
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)  # raises where OpenSSL lacks Ed25519

    def public_key(seed):
        pub = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(seed, data):
        return Ed25519PrivateKey.from_private_bytes(seed).sign(data)

    def verify(public, signature, data):
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
            return True
        except (InvalidSignature, ValueError):
            return False

    return Backend("cryptography", public_key, sign, verify)


BACKENDS = {"cryptography": _cryptography_backend, "python": _python_backend}


def load_backend(name=None):
    """The named backend, or ``cryptography`` when it works here and pure Python otherwise."""
    if name is not None:
        if name not in BACKENDS:
            raise EdgeRuntimeError("unknown Ed25519 backend {!r} — use one of {}".format(
                name, sorted(BACKENDS)))
        return BACKENDS[name]()
    try:
        return _cryptography_backend()
    except Exception:  # ImportError, or an OpenSSL without Ed25519 (UnsupportedAlgorithm)
        return _python_backend()


def _key_bytes(text, what):
    try:
        key = binascii.unhexlify(text.strip())
    except (binascii.Error, AttributeError, TypeError, ValueError):
        key = b""
    if len(key) != 32:
        raise EdgeRuntimeError("the aggregator's {} must be 64 hex digits (32 bytes) — use the one "
                               "`edgefl federation init` wrote".format(what))
    return key


def generate_key_pair(backend=None):
    """A fresh key pair as hex text: (private key, public key)."""
    seed = os.urandom(32)
    public = load_backend(backend).public_key(seed)
    return binascii.hexlify(seed).decode("ascii"), binascii.hexlify(public).decode("ascii")


def announcement_bytes(msg):
    """The bytes an announcement's signature covers (see the module docstring)."""
    fields = json.loads(json.dumps(message_fields(msg), sort_keys=True))
    return _TAG + canonical_bytes(fields, {})


class AnnouncementSigner(object):
    """The aggregator's side: ``signer.sign(msg)`` before ``encode_message(msg)``."""

    def __init__(self, private_key_hex, backend=None):
        self._seed = _key_bytes(private_key_hex, "private key")
        self.backend = load_backend(backend)
        self.public_key = self.backend.public_key(self._seed)

    @classmethod
    def from_file(cls, path, backend=None):
        """From a file holding the private key as hex (``aggregator/announce.key``)."""
        try:
            with open(path, "r") as fh:
                text = fh.read()
        except (IOError, OSError) as exc:
            raise EdgeRuntimeError("cannot read the announcement signing key {} ({}) — pass the "
                                   "announce.key written by `edgefl federation init`".format(
                                       path, exc))
        return cls(text, backend)

    def sign(self, msg):
        """Set ``msg.params["signature"]``; returns ``msg``."""
        msg.params.pop(SIGNATURE_FIELD, None)
        sig = self.backend.sign(self._seed, announcement_bytes(msg))
        msg.params[SIGNATURE_FIELD] = binascii.hexlify(sig).decode("ascii")
        return msg


class AnnouncementVerifier(object):
    """The agent's side: ``verifier.problem(msg)`` is None for a genuine announcement."""

    def __init__(self, public_key_hex, backend=None):
        self.public_key = _key_bytes(public_key_hex, "public key")
        self.backend = load_backend(backend)

    def problem(self, msg):
        """None when ``msg`` carries a valid signature of the aggregator's key over its fields and
        its tensors match the signed digest (the model's, or a coded delta's:
        ``downlink.tensors_problem``); else a short reason."""
        sig = msg.params.get(SIGNATURE_FIELD)
        if not isinstance(sig, str) or not sig:
            return "announcement is not signed"
        try:
            raw = binascii.unhexlify(sig)
        except (binascii.Error, ValueError):
            return "signature is not hex"
        if not self.backend.verify(self.public_key, raw, announcement_bytes(msg)):
            return "bad signature (not made with the aggregator's key)"
        return tensors_problem(msg)
