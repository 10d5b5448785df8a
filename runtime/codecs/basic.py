"""Dense codecs: fp32 (none), fp16 and int8 with one scale per output channel."""

from collections import OrderedDict

import numpy as np

from edgefl.runtime.codecs.base import Codec, expect_array, expect_keys, residual_add

_FP16_MAX = float(np.finfo(np.float16).max)


class NoneCodec(Codec):
    """fp32, as is: 4 bytes per parameter."""

    name = "none"

    def encode(self, delta, state, rng):
        return OrderedDict((n, np.asarray(v, np.float32)) for n, v in delta.items()), {}

    def decode(self, tensors, params, shapes):
        expect_keys(tensors, shapes)
        # read-only views into the message bytes: no copy on the aggregator's hot path
        return OrderedDict((n, expect_array(tensors, n, np.float32, s)) for n, s in shapes.items())


class Fp16Codec(Codec):
    """fp16 (clipped to the fp16 range): 2 bytes per parameter."""

    name = "fp16"

    def encode(self, delta, state, rng):
        return OrderedDict((n, np.clip(v, -_FP16_MAX, _FP16_MAX).astype(np.float16))
                           for n, v in delta.items()), {}

    def decode(self, tensors, params, shapes):
        expect_keys(tensors, shapes)
        return OrderedDict((n, expect_array(tensors, n, np.float16, s).astype(np.float32))
                           for n, s in shapes.items())


def _channels(shape):
    return int(shape[0]) if len(shape) >= 2 else 1


class Int8Codec(Codec):
    """Symmetric int8 with one fp32 scale per output channel (axis 0; 1-D tensors: one scale).

    Rounding is stochastic (unbiased) when ``stochastic`` is true; with ``error_feedback`` the
    quantisation error is carried to the next round.
    """

    name = "int8"

    def __init__(self, stochastic=True, error_feedback=False):
        self.stochastic = bool(stochastic)
        self.error_feedback = bool(error_feedback)

    def config(self):
        return {"stochastic": self.stochastic, "error_feedback": self.error_feedback}

    def encode(self, delta, state, rng):
        acc = residual_add(state, delta) if self.error_feedback else delta
        out, residual = OrderedDict(), {}
        for n, v in acc.items():
            v = np.asarray(v, np.float32)
            rows = v.reshape(_channels(v.shape), -1)
            scale = (np.abs(rows).max(axis=1) / 127.0).astype(np.float32)
            safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
            r = rows / safe[:, None]
            q = np.floor(r + rng.random_sample(r.shape)) if self.stochastic else np.rint(r)
            q = np.clip(q, -127, 127).astype(np.int8)
            out[n + "/q"] = q.reshape(v.shape)
            out[n + "/s"] = scale
            if self.error_feedback:
                residual[n] = (rows - q * scale[:, None]).reshape(v.shape)
        if self.error_feedback:
            state["residual"] = residual
        return out, {}

    def decode(self, tensors, params, shapes):
        expect_keys(tensors, [n + k for n in shapes for k in ("/q", "/s")])
        out = OrderedDict()
        for n, s in shapes.items():
            q = expect_array(tensors, n + "/q", np.int8, s)
            scale = expect_array(tensors, n + "/s", np.float32, (_channels(s),))
            rows = q.reshape(_channels(s), -1).astype(np.float32) * scale[:, None]
            out[n] = rows.reshape(s)
        return out
