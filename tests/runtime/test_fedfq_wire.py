"""FedFQ's wire budget (values and positions under one budget for the whole update) and nearest
rounding: what each option promises, on the same decoder (Python 3.6 compatible)."""
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.codecs import make_codec
from edgefl.runtime.codecs.bits import encode_positions, position_bits
from edgefl.runtime.codecs.fedfq import _quantize, _quantize_nearest, objective, wire_bits
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.wire import decode_tensors, encode_tensors


def coded(codec, delta, seed=0):
    enc, params = codec.encode(delta, {}, np.random.RandomState(seed))
    blob = encode_tensors(enc)
    dec = codec.decode(decode_tensors(blob)[0], params, OrderedDict(
        (n, v.shape) for n, v in delta.items()))
    payload = sum(v.nbytes for v in enc.values())
    return dec, payload


def error(dec, delta):
    num = sum(float(np.sum((dec[n].astype(np.float64) - delta[n]) ** 2)) for n in delta)
    return np.sqrt(num / sum(float(np.sum(np.square(delta[n], dtype=np.float64))) for n in delta))


def test_position_bits_is_what_the_positions_take():
    pos = np.sort(np.random.RandomState(0).choice(50000, 900, replace=False))
    k, unary, rem = encode_positions(pos)
    unary_bits = int(((np.diff(np.concatenate([[-1], pos])) - 1) >> k).sum()) + pos.size
    assert position_bits(pos) == unary_bits + pos.size * k
    assert (len(unary), len(rem)) == ((unary_bits + 7) // 8, (pos.size * k + 7) // 8)
    assert position_bits(np.zeros(0, np.int64)) == 0


def _exact_bits(b):
    return int(b.sum()) + sum(position_bits(np.flatnonzero(b == w)) for w in (2, 4, 6, 8))


def test_wire_bits_by_hand():
    """x^2 = 64, 16, 1, 0 under 12 bits, every bit counted (values and Rice-coded positions).
    J = sum x^2 4^-b: [4, 4, 0, 0] costs 8 + 2 (one group, gaps 0, 0: a bit each) and leaves
    64/256 + 16/256 + 1 = 1.3125, the least of all 625 width vectors that fit ([4, 2, 2, 0],
    8 + 1 + 3 bits, ties); [8, 0, 0, 0] (9 bits) leaves 17.25. The zero entry gets no bits."""
    import itertools

    x2 = np.array([64.0, 16.0, 1.0, 0.0])
    b = wire_bits(x2, 12)
    assert _exact_bits(b) <= 12 and b[3] == 0
    best = min(objective(x2, np.array(c)) for c in itertools.product((0, 2, 4, 6, 8), repeat=4)
               if _exact_bits(np.array(c)) <= 12)
    assert objective(x2, b) == best == 1.3125


@pytest.mark.parametrize("rate", [1 / 16.0, 1 / 64.0, 1 / 128.0])
def test_wire_budget_bounds_values_and_positions(random_delta, rate):
    delta = random_delta(seed=3)
    d = sum(v.size for v in delta.values())
    _, payload = coded(make_codec("fedfq", rate=rate, budget="wire"), delta)
    padding = 7 * 3 * 4  # three byte-aligned streams per width group
    assert 0.9 * rate * 32 * d <= 8 * (payload - 13 * 4) <= rate * 32 * d + padding


def test_wire_budget_beats_the_papers_allocation_at_the_same_bytes(random_delta):
    """Counting positions keeps fewer entries at more bits each: less error for the same bytes."""
    delta = random_delta(seed=5)
    paper, paper_bytes = coded(make_codec("fedfq", rate=0.02), delta)
    d = sum(v.size for v in delta.values())
    coded_bits = 8.0 * (paper_bytes - 13 * 4) - 7 * 3 * 4
    wire, wire_bytes = coded(make_codec("fedfq", rate=coded_bits / (32 * d), budget="wire"),
                             delta)
    assert wire_bytes <= paper_bytes
    assert error(wire, delta) < 0.8 * error(paper, delta)


def test_wire_budget_spends_bits_where_the_update_is():
    """One budget for the whole update: a tensor with large entries takes the bits."""
    rng = np.random.RandomState(0)
    delta = OrderedDict([("big", (rng.randn(2000) * 1.0).astype(np.float32)),
                         ("small", (rng.randn(2000) * 1e-4).astype(np.float32))])
    dec, _ = coded(make_codec("fedfq", rate=0.05, budget="wire"), delta)
    assert np.count_nonzero(dec["big"]) > 20 * max(1, np.count_nonzero(dec["small"]))


def test_a_zero_update_costs_only_headers(random_delta):
    zero = OrderedDict((n, np.zeros_like(v)) for n, v in random_delta().items())
    dec, payload = coded(make_codec("fedfq", rate=0.1, budget="wire"), zero)
    assert payload == 13 * 4 and all(not v.any() for v in dec.values())


def test_the_wire_budget_sends_one_blob_that_any_fedfq_decoder_reads_in_any_name_order(
        random_delta):
    from edgefl.runtime.errors import CodecError

    delta = random_delta(seed=2)
    enc, params = make_codec("fedfq", rate=0.05, budget="wire").encode(
        delta, {}, np.random.RandomState(0))
    assert list(enc) == ["fq"]
    shapes = OrderedDict((n, delta[n].shape) for n in reversed(list(delta)))
    dec = make_codec("fedfq").decode(enc, params, shapes)
    assert list(dec) == list(shapes) and error(dec, delta) < 0.6
    with pytest.raises(CodecError):
        make_codec("fedfq").decode(dict(enc, other=enc["fq"]), params, shapes)


def test_nearest_rounding_has_less_error_than_stochastic():
    rng = np.random.RandomState(0)
    v = (rng.standard_t(3, 5000) * 1e-2).astype(np.float32)
    for width in (2, 4, 6, 8):
        s = (1 << (width - 1)) - 1
        errs = []
        for quantize in (_quantize, _quantize_nearest):
            codes, scale = quantize(v, width, np.random.RandomState(1))
            assert codes.max() <= 2 * s
            x = (codes.astype(np.float32) - s) / s * scale
            errs.append(float(np.sum((x - v) ** 2)))
        assert errs[1] < errs[0]


def test_options_are_checked_and_decoding_is_unchanged(random_delta):
    with pytest.raises(EdgeRuntimeError, match="budget must be"):
        make_codec("fedfq", budget="all")
    with pytest.raises(EdgeRuntimeError, match="rounding must be one of"):
        make_codec("fedfq", rounding="up")
    delta = random_delta()
    enc, params = make_codec("fedfq", rate=0.05, budget="wire", rounding="nearest").encode(
        delta, {}, np.random.RandomState(0))
    plain = make_codec("fedfq")  # any FedFQ decoder reads what the options encode
    dec = plain.decode(enc, params, OrderedDict((n, v.shape) for n, v in delta.items()))
    assert error(dec, delta) < 0.5
    assert objective(np.ones(3), np.array([2, 0, 8])) == pytest.approx(1 / 16.0 + 1 + 4.0 ** -8)
