"""The pure-Python Ed25519 (RFC 8032) against the RFC's test vectors, against `cryptography`
where it is installed (the host), and on malformed keys and signatures (Python 3.6 compatible)."""
import hashlib
import os

import pytest

from edgefl.runtime import ed25519

# RFC 8032 section 7.1: TEST 1, TEST 2, TEST 3 (secret key, public key, message, signature).
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]
L = 2 ** 252 + 27742317777372353535851937790883648493


@pytest.mark.parametrize("secret,public,message,signature", RFC8032, ids=["test1", "test2", "test3"])
def test_rfc8032_vectors(secret, public, message, signature):
    seed, msg, sig = bytes.fromhex(secret), bytes.fromhex(message), bytes.fromhex(signature)
    assert ed25519.public_key(seed).hex() == public
    assert ed25519.sign(seed, msg) == sig
    assert ed25519.verify(bytes.fromhex(public), sig, msg)


def _flip(data, i):
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1:]


def test_every_alteration_is_refused():
    secret, public, message, signature = RFC8032[2]
    pub, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert not ed25519.verify(pub, sig, msg + b"\x00")
    assert not ed25519.verify(pub, sig, _flip(msg, 0))
    for i in (0, 31, 32, 63):  # R and S, first and last bytes
        assert not ed25519.verify(pub, _flip(sig, i), msg)
    assert not ed25519.verify(bytes.fromhex(RFC8032[0][1]), sig, msg)  # another key


def test_malformed_keys_and_signatures_are_invalid_not_errors():
    secret, public, message, signature = RFC8032[1]
    pub, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    s = int.from_bytes(sig[32:], "little")
    malleated = sig[:32] + (s + L).to_bytes(32, "little")  # same point equation, S >= L
    p = 2 ** 255 - 19
    non_canonical_y = (p + 1).to_bytes(32, "little")  # y >= p must not decode (RFC 8032 5.1.3)
    for key, signature_bytes in [(pub, sig[:63]), (pub, sig + b"\x00"), (pub[:31], sig),
                                 (pub, malleated), (non_canonical_y, sig), (b"\xff" * 32, sig),
                                 (pub, non_canonical_y + sig[32:]), ("not bytes", sig),
                                 (pub, None)]:
        assert ed25519.verify(key, signature_bytes, msg) is False
    with pytest.raises(ValueError, match="32 bytes"):
        ed25519.sign(b"short", msg)


def test_agrees_with_cryptography_both_ways():
    crypto = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    for i in range(8):
        seed = hashlib.sha256(b"seed %d" % i).digest()
        msg = os.urandom(i * 97)
        key = crypto.Ed25519PrivateKey.from_private_bytes(seed)
        pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert ed25519.public_key(seed) == pub
        assert ed25519.sign(seed, msg) == key.sign(msg)  # Ed25519 is deterministic
        assert ed25519.verify(pub, key.sign(msg), msg)
        key.public_key().verify(ed25519.sign(seed, msg), msg)  # raises if invalid
        assert not ed25519.verify(pub, key.sign(msg + b"!"), msg)
