"""Ed25519 (RFC 8032, section 5.1) in pure Python: public key, signature, verification.

The fallback for an edge stack without ``cryptography`` (Python 3.6, stdlib + nothing). Written
from the RFC: edwards25519 in extended coordinates (5.1.4), point encoding and decoding
(5.1.2, 5.1.3), key generation (5.1.5), signing (5.1.6) and verification (5.1.7) with the
cofactorless equation ``[S]B = R + [k]A`` (the RFC allows it; OpenSSL checks the same).

Python integers are not constant-time: verifying (public data only) is safe; signing with this
module leaks timing about the secret key, so the aggregator signs with ``cryptography`` where it
can (``edgefl.runtime.announce``) and uses this only where nothing else is installed.
"""

import hashlib

__all__ = ["public_key", "sign", "verify"]

_P = 2 ** 255 - 19
_L = 2 ** 252 + 27742317777372353535851937790883648493


def _inv(x):
    return pow(x, _P - 2, _P)


_D = -121665 * _inv(121666) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_IDENTITY = (0, 1, 1, 0)  # extended coordinates (X, Y, Z, T): x = X/Z, y = Y/Z, xy = T/Z


def _add(p, q):
    """Point addition, RFC 8032 5.1.4 (also correct for p == q)."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * _D * p[3] * q[3] % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(p):
    """Point doubling, RFC 8032 5.1.4."""
    a = p[0] * p[0] % _P
    b = p[1] * p[1] % _P
    c = 2 * p[2] * p[2] % _P
    h = a + b
    e = h - (p[0] + p[1]) * (p[0] + p[1])
    g = a - b
    f = c + g
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _negate(p):
    return ((-p[0]) % _P, p[1], p[2], (-p[3]) % _P)


def _equal(p, q):
    return ((p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0)


def _recover_x(y, sign):
    """x from y and the sign bit (RFC 8032 5.1.3 steps 2-4); None when there is none."""
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    vxx = v * x * x % _P
    if vxx == (-u) % _P:
        x = x * _SQRT_M1 % _P
    elif vxx != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x


def _decode_point(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


def _encode_point(p):
    zi = _inv(p[2])
    x, y = p[0] * zi % _P, p[1] * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_B = _decode_point((4 * _inv(5) % _P).to_bytes(32, "little"))  # y = 4/5, x even


def _mul(s, p):
    q = _IDENTITY
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _double(p)
        s >>= 1
    return q


def _double_mul(s, p, k, q):
    """[s]P + [k]Q with one shared chain of doublings (Straus-Shamir)."""
    table = {(1, 0): p, (0, 1): q, (1, 1): _add(p, q)}
    acc = _IDENTITY
    for i in range(max(s.bit_length(), k.bit_length()) - 1, -1, -1):
        acc = _double(acc)
        bits = ((s >> i) & 1, (k >> i) & 1)
        if bits != (0, 0):
            acc = _add(acc, table[bits])
    return acc


def _sha512_int(*parts):
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def _expand(seed):
    """(secret scalar, prefix) from the 32-byte seed (RFC 8032 5.1.5 steps 1-3)."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 private key is 32 bytes, got {}".format(len(seed)))
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a = (a & ((1 << 254) - 8)) | (1 << 254)
    return a, h[32:]


def public_key(seed):
    """The 32-byte public key of a 32-byte private key (seed)."""
    return _encode_point(_mul(_expand(seed)[0], _B))


def sign(seed, message):
    """The 64-byte signature of ``message`` (bytes) with the private key ``seed``."""
    a, prefix = _expand(seed)
    pub = _encode_point(_mul(a, _B))
    r = _sha512_int(prefix, message) % _L
    big_r = _encode_point(_mul(r, _B))
    k = _sha512_int(big_r, pub, message) % _L
    return big_r + ((r + k * a) % _L).to_bytes(32, "little")


def verify(public, signature, message):
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public``.

    Never raises on malformed input: a key or signature of the wrong length, a point that does
    not decode, or ``S >= L`` (a malleated signature) are simply invalid.
    """
    if not isinstance(public, bytes) or not isinstance(signature, bytes) or len(signature) != 64:
        return False
    a_point = _decode_point(public)
    r_point = _decode_point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a_point is None or r_point is None or s >= _L:
        return False
    k = _sha512_int(signature[:32], public, message) % _L
    # [S]B - [k]A == R  <=>  [S]B == R + [k]A
    return _equal(_double_mul(s, _B, k, _negate(a_point)), r_point)
