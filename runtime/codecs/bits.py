"""Vectorised bit packing and Golomb-Rice coding of sorted positions (numpy only).

Positions are sent as gaps, each gap split into a unary quotient (one stream) and a k-bit
remainder (another stream): both streams decode without a sequential parse.
"""

import struct

import numpy as np

from edgefl.runtime.errors import CodecError


def pack_uint(values, nbits):
    """Pack non-negative ints < 2**nbits, MSB first, into bytes."""
    values = np.asarray(values, np.uint32)
    if nbits == 0 or values.size == 0:
        return b""
    if nbits == 8:
        return values.astype(np.uint8).tobytes()
    shifts = np.arange(nbits - 1, -1, -1, dtype=np.uint32)
    bits = ((values[:, None] >> shifts[None, :]) & 1).astype(np.uint8)
    return np.packbits(bits.ravel()).tobytes()


def unpack_uint(buf, count, nbits):
    """Inverse of :func:`pack_uint`; ``buf`` must be exactly ceil(count*nbits/8) bytes."""
    if len(buf) != (count * nbits + 7) // 8:
        raise CodecError("bit-stream", "length {} for {}x{} bits".format(len(buf), count, nbits))
    if nbits == 0 or count == 0:
        return np.zeros(count, np.uint32)
    raw = np.frombuffer(buf, np.uint8)
    if nbits == 8:
        return raw.astype(np.uint32)
    if 8 % nbits == 0:  # 1, 2, 4 bits: whole values per byte, MSB first
        shifts = np.arange(8 - nbits, -1, -nbits, dtype=np.uint8)
        vals = (raw[:, None] >> shifts[None, :]) & np.uint8((1 << nbits) - 1)
        return vals.ravel()[:count].astype(np.uint32)
    bits = np.unpackbits(raw)[:count * nbits].reshape(count, nbits)
    # one shift-or per bit column: an integer dot product is no BLAS call and costs ~10x more
    vals = np.zeros(count, np.uint32)
    for j in range(nbits):
        vals <<= np.uint32(1)
        vals |= bits[:, j]
    return vals


def rice_parameter(gaps):
    """The Rice parameter k (0..24) that minimises the coded size of ``gaps``."""
    if gaps.size == 0:
        return 0
    g = gaps.astype(np.int64)
    costs = [int((g >> k).sum()) + gaps.size * k for k in range(25)]
    return int(np.argmin(costs))


def position_bits(pos):
    """Bits :func:`encode_positions` spends on strictly increasing ``pos`` (both streams)."""
    pos = np.asarray(pos, np.int64)
    if pos.size == 0:
        return 0
    gaps = np.diff(np.concatenate([[-1], pos])) - 1
    k = rice_parameter(gaps)
    return int((gaps >> k).sum()) + pos.size * (k + 1)


def encode_positions(pos):
    """Strictly increasing positions -> (k, unary bytes, remainder bytes)."""
    pos = np.asarray(pos, np.int64)
    gaps = np.diff(np.concatenate([[-1], pos])) - 1
    k = rice_parameter(gaps)
    q = gaps >> k
    total = int(q.sum()) + q.size
    bits = np.ones(total, np.uint8)
    bits[np.cumsum(q + 1) - 1] = 0
    return k, np.packbits(bits).tobytes(), pack_uint(gaps & ((1 << k) - 1), k)


def decode_positions(count, k, unary, rem, limit):
    """Inverse of :func:`encode_positions`; positions must be < ``limit``."""
    parts = [pos for _, pos in iter_positions(count, k, unary, rem, limit)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def iter_positions(count, k, unary, rem, limit, chunk=1 << 13):
    """:func:`decode_positions` a chunk at a time: (index of the chunk's first position, its
    int64 positions), at most about ``chunk`` positions each, so a decoder's temporaries do not
    grow with the number of positions. The same checks, raised when the chunk that breaks one
    is reached."""
    if count == 0:
        if unary:
            raise CodecError("bit-stream", "unary stream for zero positions")
        return
    if len(rem) != (count * k + 7) // 8:
        raise CodecError("bit-stream", "length {} for {}x{} bits".format(len(rem), count, k))
    raw = np.frombuffer(unary, np.uint8)
    done, last_zero, last_pos = 0, -1, -1
    step = max(1, chunk // 8)  # unary bytes per chunk: at most 8 zeros (positions) each
    for b0 in range(0, raw.size, step):
        zeros = np.flatnonzero(np.unpackbits(raw[b0:b0 + step]) == 0)[:count - done]
        if zeros.size == 0:
            continue
        zeros += 8 * b0
        q = np.empty(zeros.size, np.int64)
        q[0] = zeros[0] - last_zero - 1
        np.subtract(zeros[1:], zeros[:-1], out=q[1:])
        q[1:] -= 1
        q <<= k
        q += unpack_uint_range(rem, done, zeros.size, k)
        q += 1
        np.cumsum(q, out=q)
        q += last_pos
        if q[-1] >= limit:
            raise CodecError("bit-stream", "position {} beyond size {}".format(int(q[-1]), limit))
        yield done, q
        done += zeros.size
        last_zero, last_pos = int(zeros[-1]), int(q[-1])
        if done == count:
            if last_zero // 8 != raw.size - 1:
                break
            return
    raise CodecError("bit-stream", "unary stream does not hold {} gaps".format(count))


def unpack_uint_range(buf, start, count, nbits):
    """Values ``start .. start + count`` of what :func:`pack_uint` packed into ``buf`` (MSB
    first), without unpacking the rest."""
    if nbits == 0 or count == 0:
        return np.zeros(count, np.uint32)
    first = start * nbits
    lo, hi = first // 8, (first + count * nbits + 7) // 8
    if hi > len(buf):
        raise CodecError("bit-stream", "length {} for {}x{} bits from {}".format(
            len(buf), count, nbits, start))
    raw = np.frombuffer(buf, np.uint8, count=hi - lo, offset=lo)
    if nbits == 8:
        return raw.astype(np.uint32)
    skip = first - 8 * lo
    bits = np.unpackbits(raw)[skip:skip + count * nbits].reshape(count, nbits)
    vals = np.zeros(count, np.uint32)
    for j in range(nbits):
        vals <<= np.uint32(1)
        vals |= bits[:, j]
    return vals


class ByteReader(object):
    """Bounds-checked reads from a bytes-like object."""

    def __init__(self, buf):
        # a view: take() hands out views of the caller's bytes (read, never written), no copies
        self.buf = memoryview(buf).cast("B") if not isinstance(buf, bytes) else memoryview(buf)
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.buf):
            raise CodecError("truncated", "need {} bytes at {} of {}".format(n, self.pos,
                                                                             len(self.buf)))
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def done(self):
        if self.pos != len(self.buf):
            raise CodecError("trailing-bytes", "{} unread bytes".format(len(self.buf) - self.pos))
