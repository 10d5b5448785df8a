"""Hypothesis properties for codecs and aggregation (skipped where hypothesis is absent)."""
from collections import OrderedDict

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from edgefl.runtime import strategies as S  # noqa: E402
from edgefl.runtime.codecs import CODECS, make_codec  # noqa: E402
from edgefl.runtime.wire import decode_message, encode_message, Message  # noqa: E402

finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)
arrays = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6), elements=finite)


@settings(max_examples=40, deadline=None)
@given(arrays, st.sampled_from(sorted(CODECS)), st.integers(0, 2 ** 31))
def test_codecs_round_trip_any_shape(arr, name, seed):
    delta = OrderedDict([("t", arr)])
    codec = make_codec(name)
    enc, params = codec.encode(delta, {}, np.random.RandomState(seed))
    msg = decode_message(encode_message(Message("update", "f", tensors=enc, params=params)))
    dec = codec.decode(msg.tensors, params, OrderedDict([("t", arr.shape)]))
    assert dec["t"].shape == arr.shape and np.all(np.isfinite(dec["t"]))
    if name == "none":
        np.testing.assert_array_equal(dec["t"], arr)


client_updates = st.lists(
    st.tuples(st.integers(1, 1000), hnp.arrays(np.float32, (3, 2), elements=finite)),
    min_size=1, max_size=7)


@settings(max_examples=60, deadline=None)
@given(client_updates, st.randoms(use_true_random=False),
       st.sampled_from(["fedavg", "fedbuff", "median", "trimmed_mean"]))
def test_aggregation_does_not_depend_on_order(items, rnd, name):
    ups = [S.ClientUpdate("c{}".format(i), n, OrderedDict([("w", a)]), i % 3)
           for i, (n, a) in enumerate(items)]
    shuffled = list(ups)
    rnd.shuffle(shuffled)
    a, b = S.aggregate(name, ups), S.aggregate(name, shuffled)
    assert a["w"].tobytes() == b["w"].tobytes()


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, (4,), elements=finite), st.lists(st.integers(1, 10 ** 6),
                                                               min_size=1, max_size=9))
def test_identical_updates_aggregate_to_themselves(arr, weights):
    ups = [S.ClientUpdate("c{}".format(i), n, OrderedDict([("w", arr)]))
           for i, n in enumerate(weights)]
    for name in ("fedavg", "median", "trimmed_mean"):
        np.testing.assert_allclose(S.aggregate(name, ups)["w"], arr, rtol=1e-6, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_wire_error(blob):
    from edgefl.runtime.errors import WireError

    try:
        decode_message(blob)
    except WireError:
        pass


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), arrays, max_size=4),
       st.text(max_size=20), st.integers(0, 10 ** 6))
def test_wire_round_trip_any_tensors(tensors, client, rnd):
    msg = Message("update", "fed", round=rnd, client_id=client, tensors=tensors)
    back = decode_message(encode_message(msg))
    assert back.client_id == client and back.round == rnd
    assert set(back.tensors) == set(tensors)
    for k, v in tensors.items():
        assert back.tensors[k].tobytes() == v.tobytes() and back.tensors[k].shape == v.shape
