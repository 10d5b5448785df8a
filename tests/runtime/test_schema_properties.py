"""Hypothesis: JSON of every type in every header and metadata field of an update. The reader
either returns well-typed fields or raises WireError; the aggregator answers each message with
exactly one status and never with ``internal`` (an unexpected exception would be that)."""
import json
import struct
from collections import OrderedDict

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings, strategies as st  # noqa: E402

from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish  # noqa: E402
from edgefl.runtime.errors import WireError  # noqa: E402
from edgefl.runtime.schema import MESSAGE_FIELDS  # noqa: E402
from edgefl.runtime.wire import decode_message  # noqa: E402

MODEL = OrderedDict([("fc.bias", np.arange(3, dtype=np.float32)),
                     ("fc.weight", np.ones((3, 2), np.float32))])

# numerals of other scripts: superscripts and circled digits pass str.isdigit() but not int(),
# Arabic-Indic and mathematical digits pass both
numerals = st.sampled_from([u"\u00b2", u"\u00b9", u"\u2460", u"\u0661", u"\U0001d7d9", u"\u2167",
                            u"\u00bd", u"\uff11"]) | st.text(
    st.characters(whitelist_categories=("Nd", "No", "Nl")), min_size=1, max_size=6)
scalars = (st.none() | st.booleans() | st.integers(-2 ** 80, 2 ** 80)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | numerals)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=8)
shapes = st.lists(st.sampled_from([0, 1, 2, 3, 6, 2 ** 31, 2 ** 62, 10 ** 30]), max_size=9)


def _genuine(kit):
    agg = AggregatorCore(AggregatorConfig("fed", rounds=3, min_clients=2), MODEL)
    agg.start(0.0)
    return agg, kit.make_update(agg, "a", 0.25)


def _split(payload):
    (n,) = struct.unpack("<Q", payload[:8])
    return json.loads(payload[8:8 + n].decode("utf-8"), object_pairs_hook=OrderedDict), \
        payload[8 + n:]


def _join(header, data):
    raw = json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw + data


def _check(kit, agg, topic, payload):
    try:
        msg = decode_message(payload)
    except WireError:
        msg = None
    if msg is not None:  # typed as the schema promises
        assert isinstance(msg.kind, str) and isinstance(msg.client_id, str)
        assert type(msg.round) is int and 0 <= msg.round < 2 ** 31
        assert type(msg.num_examples) is int and msg.num_examples >= 0
        assert isinstance(msg.metrics, dict) and isinstance(msg.params, dict)
        assert all(isinstance(v, np.ndarray) for v in msg.tensors.values())
    actions = agg.on_message(topic, payload, 1.0)
    answers = kit.statuses([a for a in actions if isinstance(a, Publish)])
    assert len(answers) == 1
    assert not answers[0][2].startswith("internal"), answers[0][2]
    # genuine updates close the round (with the mutant in it when it was accepted)
    for cid in ("b", "c")[:2 - len(agg.accepted)]:
        answers = kit.statuses(agg.on_message(*kit.make_update(agg, cid, 0.5), now=2.0))
        assert answers == [(cid, True, "")]
    assert agg.round == 2


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(MESSAGE_FIELDS) + ["edgefl.schema"]),
       numerals | json_values, st.sampled_from(["raw", "text", "json"]))
@example(field="round", value=u"\u00b2", how="text")
@example(field="num_examples", value=u"\u2460", how="text")
def test_any_json_in_any_metadata_field(kit, field, value, how):
    # Prepare: the field's string replaced by the value itself (not a string: refused by the
    # format), by its text, or by its JSON text.
    agg, (topic, good) = _genuine(kit)
    header, data = _split(good)
    header["__metadata__"][field] = {"raw": value, "text": str(value),
                                     "json": json.dumps(value)}[how]
    # Execute + Assert
    _check(kit, agg, topic, _join(header, data))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["dtype", "shape", "data_offsets"]), json_values | shapes,
       st.sampled_from(["fc.bias", "fc.weight"]))
@example(key="shape", value=[0, 10 ** 30], name="fc.bias")
def test_any_json_in_any_tensor_entry_field(kit, key, value, name):
    agg, (topic, good) = _genuine(kit)
    header, data = _split(good)
    header[name][key] = value
    _check(kit, agg, topic, _join(header, data))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["metrics", "params"]), st.just("loss") | st.text(max_size=8), json_values)
@example(field="metrics", key="loss", value="0.5")
@example(field="metrics", key="loss", value=10 ** 400)
def test_any_json_inside_metrics_and_params(kit, field, key, value):
    agg, (topic, good) = _genuine(kit)
    header, data = _split(good)
    obj = json.loads(header["__metadata__"][field])
    obj[key if field == "metrics" else "codec"] = value
    header["__metadata__"][field] = json.dumps(obj)
    _check(kit, agg, topic, _join(header, data))
