"""Update codecs: a registry of encoders for model updates (delta = local - global).

Every codec turns ``{name: float32 delta}`` into ``{name: ndarray}`` (so an encoded update rides
in the safetensors wire format) and back. Decoders are strict: given the expected shapes, any
inconsistency raises :class:`~edgefl.runtime.errors.CodecError` with a reason.

Codecs that keep error feedback store their residuals in the caller-owned ``state`` dict (the
agent keeps one per federation), so the encoder itself is stateless.
"""

from edgefl.runtime.codecs.base import Codec
from edgefl.runtime.codecs.basic import Fp16Codec, Int8Codec, NoneCodec
from edgefl.runtime.codecs.fedfq import FedFQCodec
from edgefl.runtime.codecs.sparse import RSDGCCodec, TopKCodec
from edgefl.runtime.errors import EdgeRuntimeError

__all__ = ["Codec", "CODECS", "make_codec"]

CODECS = {
    "none": NoneCodec,
    "fp16": Fp16Codec,
    "int8": Int8Codec,
    "topk": TopKCodec,
    "rsdgc": RSDGCCodec,
    "fedfq": FedFQCodec,
}


def make_codec(name, **params):
    """Build a codec by registry name; unknown names or options raise EdgeRuntimeError."""
    try:
        cls = CODECS[name]
    except KeyError:
        raise EdgeRuntimeError("unknown codec {!r} — choose one of {}".format(
            name, ", ".join(sorted(CODECS))))
    try:
        return cls(**params)
    except TypeError as exc:
        raise EdgeRuntimeError("bad options for codec {!r}: {} — see {}.__init__".format(
            name, exc, cls.__name__))
