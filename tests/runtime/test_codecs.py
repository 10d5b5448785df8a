"""Update codecs: exact round trips, error feedback bookkeeping, FedFQ bit allocation, strict decode."""
import itertools
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.codecs import CODECS, make_codec
from edgefl.runtime.codecs.bits import (decode_positions, encode_positions, iter_positions,
                                        pack_uint, unpack_uint, unpack_uint_range)
from edgefl.runtime.codecs.fedfq import (cgsa_refine, objective, spec_init_bits, waterfill_bits)
from edgefl.runtime.errors import CodecError, EdgeRuntimeError, WireError
from edgefl.runtime.wire import decode_tensors, encode_tensors


def shapes_of(delta):
    return OrderedDict((n, v.shape) for n, v in delta.items())


def wire_round_trip(codec, delta, state=None, seed=0):
    state = {} if state is None else state
    enc, params = codec.encode(delta, state, np.random.RandomState(seed))
    blob = encode_tensors(enc)
    return codec.decode(decode_tensors(blob)[0], params, shapes_of(delta)), len(blob), state


@pytest.mark.parametrize("name", sorted(CODECS))
def test_every_codec_decodes_to_the_right_names_and_shapes(name, random_delta):
    delta = random_delta()
    dec, nbytes, _ = wire_round_trip(make_codec(name), delta)
    assert list(dec) == list(delta)
    for n in delta:
        assert dec[n].shape == delta[n].shape and dec[n].dtype == np.float32
    assert nbytes > 0


def test_dense_codecs_error_bounds(random_delta):
    delta = random_delta()
    exact, _, _ = wire_round_trip(make_codec("none"), delta)
    half, _, _ = wire_round_trip(make_codec("fp16"), delta)
    q8, _, _ = wire_round_trip(make_codec("int8", stochastic=False), delta)
    for n, v in delta.items():
        np.testing.assert_array_equal(exact[n], v)
        np.testing.assert_allclose(half[n], v, rtol=1e-3, atol=1e-7)
        rows = v.reshape(v.shape[0] if v.ndim > 1 else 1, -1)
        step = np.abs(rows).max(axis=1, keepdims=True) / 127
        assert np.all(np.abs(q8[n].reshape(rows.shape) - rows) <= step / 2 + 1e-9)


@pytest.mark.parametrize("name", ["topk", "rsdgc", "fedfq"])
def test_error_feedback_keeps_what_was_not_sent(name, random_delta):
    """sent + residual == delta + previous residual, every round."""
    codec, state = make_codec(name), {}
    carried = OrderedDict((n, np.zeros_like(v)) for n, v in random_delta().items())
    for r in range(3):
        delta = random_delta(seed=r)
        dec, _, state = wire_round_trip(codec, delta, state, seed=r)
        for n in delta:
            np.testing.assert_allclose(dec[n] + state["residual"][n], delta[n] + carried[n],
                                       atol=1e-6)
        carried = OrderedDict((n, state["residual"][n].copy()) for n in delta)


def test_topk_keeps_the_largest_entries(random_delta):
    delta = random_delta()
    dec, nbytes, _ = wire_round_trip(make_codec("topk", ratio=0.05), delta)
    for n, v in delta.items():
        k = int(np.ceil(0.05 * v.size))
        kept = np.flatnonzero(dec[n].ravel())
        assert len(kept) == k
        assert np.abs(v.ravel()[kept]).min() >= np.sort(np.abs(v.ravel()))[-k]


def test_rsdgc_meets_the_global_budget(random_delta):
    delta = random_delta()
    codec = make_codec("rsdgc", ratio=0.02)
    dec, _, state = wire_round_trip(codec, delta)
    kept = sum(int(np.count_nonzero(v)) for v in dec.values())
    total = sum(v.size for v in delta.values())
    assert 0.5 * 0.02 * total <= kept <= 0.02 * total + len(delta)
    assert abs(sum(state["importance"].values()) - 1.0) < 1e-6


def test_waterfill_is_the_exact_optimum_on_small_problems():
    rng = np.random.RandomState(3)
    for _ in range(20):
        x2 = rng.exponential(size=4) ** 2
        steps = rng.randint(0, 9)
        b = waterfill_bits(x2, steps)
        assert int(b.sum()) == 2 * steps
        best = min(objective(x2, np.array(c)) for c in itertools.product(range(0, 10, 2),
                                                                           repeat=4)
                   if sum(c) == 2 * steps)
        assert objective(x2, b) == pytest.approx(best)


def test_cgsa_keeps_the_budget_and_improves_the_spec_start():
    rng = np.random.RandomState(0)
    x2 = rng.standard_t(3, 2000) ** 2
    start = spec_init_bits(x2, 400)
    refined = cgsa_refine(x2, start, np.random.RandomState(1), iters=100)
    assert int(refined.sum()) == int(start.sum()) == 800
    assert set(np.unique(refined)) <= {0, 2, 4, 6, 8}
    assert objective(x2, refined) <= objective(x2, start)
    opt = waterfill_bits(x2, 400)
    assert objective(x2, opt) <= objective(x2, refined)


def test_fedfq_is_unbiased_without_error_feedback():
    x = OrderedDict([("w", np.linspace(-1, 1, 64).astype(np.float32))])
    codec = make_codec("fedfq", rate=0.25, error_feedback=False, anneal_iters=0)
    mean = np.mean([wire_round_trip(codec, x, seed=s)[0]["w"] for s in range(400)], axis=0)
    np.testing.assert_allclose(mean, x["w"], atol=0.02)


def test_fedfq_bytes_on_the_wire_follow_the_budget(random_delta):
    delta = random_delta()
    d = sum(v.size for v in delta.values())
    _, small, _ = wire_round_trip(make_codec("fedfq", rate=0.01), delta)
    _, large, _ = wire_round_trip(make_codec("fedfq", rate=0.05), delta)
    _, fp32, _ = wire_round_trip(make_codec("none"), delta)
    assert small < large < fp32
    assert small * 8 >= 0.01 * 32 * d  # the payload alone takes the budget: nothing is hidden


def test_bit_packing_and_positions_round_trip():
    rng = np.random.RandomState(0)
    for nbits in (1, 2, 3, 6, 8, 13):
        v = rng.randint(0, 2 ** nbits, 101)
        np.testing.assert_array_equal(unpack_uint(pack_uint(v, nbits), 101, nbits), v)
    pos = np.sort(rng.choice(100000, 777, replace=False))
    k, unary, rem = encode_positions(pos)
    np.testing.assert_array_equal(decode_positions(777, k, unary, rem, 100000), pos)
    with pytest.raises(CodecError):
        decode_positions(777, k, unary, rem, int(pos[-1]))
    with pytest.raises(CodecError):
        decode_positions(778, k, unary, rem, 100000)


@pytest.mark.parametrize("chunk", [1, 8, 100, 1 << 14])
def test_positions_and_values_decode_the_same_a_chunk_at_a_time(chunk):
    # the chunked decoder (what FedFQ uses: small temporaries) against the whole-stream one
    rng = np.random.RandomState(1)
    pos = np.sort(rng.choice(50000, 3001, replace=False))
    k, unary, rem = encode_positions(pos)
    parts = list(iter_positions(3001, k, unary, rem, 50000, chunk=chunk))
    assert [first for first, _ in parts] == list(np.cumsum([0] + [p.size for _, p in parts])[:-1])
    np.testing.assert_array_equal(np.concatenate([p for _, p in parts]), pos)
    for nbits in (1, 3, 8, 13):
        v = rng.randint(0, 2 ** nbits, 3001)
        packed = pack_uint(v, nbits)
        got = np.concatenate([unpack_uint_range(packed, first, p.size, nbits) for first, p in parts])
        np.testing.assert_array_equal(got, v)
    # a stream with a byte after the last gap is refused, as a whole and a chunk at a time
    with pytest.raises(CodecError, match="does not hold"):
        list(iter_positions(3001, k, unary + b"\xff", rem, 50000, chunk=chunk))


@pytest.mark.parametrize("name,options", [(n, {}) for n in sorted(CODECS)] + [
    ("fedfq", {"rate": 0.05, "budget": "wire"})])  # FedFQ's joint layout too
def test_corrupted_encodings_raise_codec_errors_only(name, options, random_delta):
    delta = random_delta()
    enc, params = make_codec(name, **options).encode(delta, {}, np.random.RandomState(0))
    rng = np.random.RandomState(1)
    decoded_ok = 0
    for _ in range(60):
        bad = OrderedDict((k, np.array(v)) for k, v in enc.items())
        key = sorted(bad)[rng.randint(len(bad))]
        arr = bad[key]
        choice = rng.randint(3)
        if choice == 0 and arr.size:
            raw = bytearray(arr.tobytes())
            raw[rng.randint(len(raw))] ^= 1 << rng.randint(8)
            bad[key] = np.frombuffer(bytes(raw), arr.dtype).reshape(arr.shape)
        elif choice == 1:
            bad[key] = arr.ravel()[:max(0, arr.size - 1)]
        else:
            del bad[key]
        try:
            make_codec(name).decode(bad, params, shapes_of(delta))
            decoded_ok += 1
        except WireError:
            pass


def test_unknown_codec_and_bad_options_are_clear_errors():
    with pytest.raises(EdgeRuntimeError, match="unknown codec"):
        make_codec("zip")
    with pytest.raises(EdgeRuntimeError, match="bad options"):
        make_codec("topk", ratio=2.0)
