"""Codec base class and strict helpers shared by the decoders."""

from collections import OrderedDict

import numpy as np

from edgefl.runtime.errors import CodecError


class Codec(object):
    """Encode/decode a model update.

    Contract:
        ``encode(delta, state, rng) -> (tensors, params)``: ``delta`` maps names to float32
        arrays; ``state`` is a dict the codec may use for error feedback (owned by the caller,
        one per stream of updates); ``rng`` a ``numpy.random.RandomState``. ``params`` is a
        JSON-able dict that travels in the message (``Message.params["codec"]``).
        ``decode(tensors, params, shapes) -> OrderedDict[name, float32]`` with exactly the
        names and shapes of ``shapes``; raises CodecError on anything inconsistent.
    """

    name = ""

    def encode(self, delta, state, rng):
        raise NotImplementedError

    def decode(self, tensors, params, shapes):
        raise NotImplementedError

    def config(self):
        """The codec's options (JSON-able), e.g. for results tables."""
        return {}


def expect_keys(tensors, keys):
    """Check that ``tensors`` holds exactly ``keys``."""
    got, want = set(tensors), set(keys)
    if got != want:
        missing, extra = sorted(want - got), sorted(got - want)
        raise CodecError("tensor-names", "missing {} extra {}".format(
            [m[:60] for m in missing[:3]], [e[:60] for e in extra[:3]]))


def expect_array(tensors, key, dtype, shape=None, ndim=None):
    """Return ``tensors[key]`` after checking its dtype and shape (or rank)."""
    arr = tensors[key]
    if arr.dtype != np.dtype(dtype):
        raise CodecError("dtype", "{} is {}, expected {}".format(key[:60], arr.dtype,
                                                                np.dtype(dtype)))
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise CodecError("shape", "{} is {}, expected {}".format(key[:60], arr.shape, shape))
    if ndim is not None and arr.ndim != ndim:
        raise CodecError("shape", "{} has rank {}, expected {}".format(key[:60], arr.ndim, ndim))
    return arr


def residual_add(state, delta):
    """delta + stored error-feedback residual (float32 copies)."""
    res = state.get("residual", {})
    return OrderedDict((n, np.asarray(v, np.float32) + res[n] if n in res
                        else np.array(v, np.float32)) for n, v in delta.items())


def size_of(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n
