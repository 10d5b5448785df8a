"""Wire format: round trips, interop with the safetensors library, strict rejection of garbage."""
import json
import os
import struct
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.errors import WireError
from edgefl.runtime.wire import (Message, decode_message, decode_tensors, encode_message,
                                 encode_tensors, model_digest)

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "update_v1.safetensors")
# the same message as the writer before the lean wire wrote it: ", "/": " JSON, every field
SPACED = os.path.join(os.path.dirname(__file__), "data", "update_v1_spaced.safetensors")
FIELDS = ("kind", "federation", "round", "client_id", "base_digest", "num_examples", "encoding",
          "metrics", "params", "schema")


def golden_message():
    return Message(kind="update", federation="golden", round=7, client_id="sat-1",
                   base_digest="ab" * 32, num_examples=123, encoding="none",
                   metrics={"loss": 0.5}, params={"codec": {}},
                   tensors=OrderedDict([("b", np.array([1.0, -2.0], np.float32)),
                                        ("w", np.arange(6, dtype=np.float16).reshape(2, 3))]))


def test_round_trip_keeps_every_field():
    msg = golden_message()
    back = decode_message(encode_message(msg))
    for f in ("kind", "federation", "round", "client_id", "base_digest", "num_examples",
              "encoding", "metrics", "params", "schema"):
        assert getattr(back, f) == getattr(msg, f)
    for n in msg.tensors:
        assert back.tensors[n].dtype == msg.tensors[n].dtype
        np.testing.assert_array_equal(back.tensors[n], msg.tensors[n])


def test_golden_blob_is_byte_stable():
    """A format change shows up here; regenerate with EDGEFL_REGEN_GOLDEN=1."""
    blob = encode_message(golden_message())
    if os.environ.get("EDGEFL_REGEN_GOLDEN"):
        with open(GOLDEN, "wb") as f:
            f.write(blob)
    with open(GOLDEN, "rb") as f:
        assert f.read() == blob


def verbose_blob(msg):
    """``msg`` as the writer before the lean wire wrote it: every field, spaced JSON."""
    meta = {"edgefl.schema": str(msg.schema), "metrics": json.dumps(msg.metrics, sort_keys=True),
            "params": json.dumps(msg.params, sort_keys=True)}
    for f in ("kind", "federation", "round", "client_id", "base_digest", "num_examples", "encoding"):
        meta[f] = str(getattr(msg, f))
    return encode_tensors(msg.tensors, meta)


def lean_messages():
    """A status at its defaults, an announcement, a round-0 status, an update with no metrics."""
    return [Message(kind="status", federation="f", round=3, client_id="c", encoding="",
                    params={"accepted": True}),
            Message(kind="status", federation="f", encoding="",
                    params={"accepted": False, "reason": "wire: truncated", "current_round": 2}),
            Message(kind="round", federation="f", round=2, base_digest="cd" * 32, encoding="fedfq",
                    params={"epoch": 1, "deadline": 12.5, "train": {"lr": 0.1}},
                    tensors=OrderedDict([("fq", np.arange(9, dtype=np.uint8))])),
            Message(kind="update", federation="f", round=1, client_id="c", base_digest="ef" * 32,
                    num_examples=4, tensors=OrderedDict([("w", np.ones(3, np.float32))]))]


def test_the_reader_takes_the_spaced_full_form_and_the_lean_form_alike():
    old = open(SPACED, "rb").read()
    assert b'\\": ' in old  # the old form: spaced JSON
    for blob in (old, encode_message(golden_message())):
        back = decode_message(blob)
        assert [getattr(back, f) for f in FIELDS] == [getattr(golden_message(), f) for f in FIELDS]
    for msg in lean_messages():
        lean, verbose = decode_message(encode_message(msg)), decode_message(verbose_blob(msg))
        assert [getattr(lean, f) for f in FIELDS] == [getattr(verbose, f) for f in FIELDS] == \
            [getattr(msg, f) for f in FIELDS]
        assert len(encode_message(msg)) < len(verbose_blob(msg))


def test_fields_at_their_default_are_left_out_and_json_is_compact():
    status, failed, announce, update = lean_messages()
    _, meta = decode_tensors(encode_message(status))
    assert meta == {"edgefl.schema": "1", "kind": "status", "federation": "f", "round": "3",
                    "client_id": "c", "params": '{"accepted":true}'}
    _, meta = decode_tensors(encode_message(failed))
    assert "round" not in meta and meta["params"] == \
        '{"accepted":false,"current_round":2,"reason":"wire: truncated"}'
    _, meta = decode_tensors(encode_message(announce))
    assert set(meta) == {"edgefl.schema", "kind", "federation", "round", "base_digest", "encoding",
                         "params"}
    _, meta = decode_tensors(encode_message(update))
    assert meta["encoding"] == "none" and "metrics" not in meta and "params" not in meta


def test_safetensors_library_reads_lean_messages():
    st = pytest.importorskip("safetensors.numpy")
    for msg in lean_messages():
        theirs = st.load(encode_message(msg))
        assert sorted(theirs) == sorted(msg.tensors)
        for n in msg.tensors:
            np.testing.assert_array_equal(theirs[n], msg.tensors[n])


def test_safetensors_library_reads_ours_and_we_read_its():
    st = pytest.importorskip("safetensors.numpy")
    msg = golden_message()
    theirs = st.load(encode_message(msg))
    for n in msg.tensors:
        np.testing.assert_array_equal(theirs[n], msg.tensors[n])
    blob = st.save({"x": np.ones((2, 3), np.float32), "i": np.arange(4, dtype=np.int64),
                    "e": np.zeros((0, 3), np.uint8)}, metadata={"k": "v"})
    tensors, meta = decode_tensors(blob)
    assert meta == {"k": "v"}
    np.testing.assert_array_equal(tensors["i"], np.arange(4))
    assert tensors["e"].shape == (0, 3)


def test_digest_depends_on_names_shapes_dtypes_and_values():
    a = OrderedDict([("w", np.zeros((2, 3), np.float32))])
    base = model_digest(a)
    assert model_digest(OrderedDict(reversed(list(a.items())))) == base
    assert model_digest({"v": a["w"]}) != base
    assert model_digest({"w": a["w"].reshape(3, 2)}) != base
    assert model_digest({"w": a["w"].astype(np.float16)}) != base
    b = a["w"].copy()
    b[0, 0] = 1e-30
    assert model_digest({"w": b}) != base


def _blob(header, data=b""):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize("blob,reason", [
    (b"", "truncated"),
    (b"\x01\x02", "truncated"),
    (struct.pack("<Q", 1 << 40) + b"{}", "header-too-large"),
    (struct.pack("<Q", 100) + b"{}", "truncated"),
    (struct.pack("<Q", 3) + b"\xff\xfe{", "bad-header-json"),
    (_blob([1, 2]), "bad-header"),
    (_blob({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}), "size-mismatch"),
    (_blob({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
     "size-mismatch"),
    (_blob({"x": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}, b"\0\0"),
     "unsupported-dtype"),
    (_blob({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
     "bad-shape"),
    (_blob({"x": {"dtype": "F32", "shape": [1 << 62, 1 << 62], "data_offsets": [0, 4]}},
           b"\0" * 4), "bad-shape"),
    # zero-sized, but with dimensions no array can have (numpy's reshape would raise)
    (_blob({"x": {"dtype": "F32", "shape": [0, 10 ** 30], "data_offsets": [0, 0]}}), "bad-shape"),
    (_blob({"x": {"dtype": "F32", "shape": [0, 1 << 31, 1 << 31, 1 << 31],
                  "data_offsets": [0, 0]}}), "bad-shape"),
    (_blob({"x": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4),
     "bad-shape"),
    (_blob({"x": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
     "unsupported-dtype"),
    (_blob({"x": {"dtype": {"F32": 1}, "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
     "unsupported-dtype"),
    (_blob({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4.0]}}, b"\0" * 4),
     "bad-offsets"),
    (_blob({"\ud800": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
     "bad-metadata"),
    (_blob({"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
     "bad-offsets"),
    (_blob({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            "y": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
     "bad-offsets"),
    (_blob({"__metadata__": {"a": 1}}), "bad-metadata"),
    (_blob({"x": {"dtype": "F32", "shape": [1]}}), "bad-tensor-entry"),
    (struct.pack("<Q", 16) + b'{"a":1, "a":2}  ', "duplicate-key"),
    (struct.pack("<Q", 4000) + b"[" * 4000, "bad-header-json"),
])
def test_garbage_is_rejected_with_a_reason(blob, reason):
    with pytest.raises(WireError) as info:
        decode_tensors(blob)
    assert info.value.reason == reason


def test_message_fields_are_checked():
    ok = encode_message(golden_message())
    tensors, meta = decode_tensors(ok)
    for key, value, reason in [("edgefl.schema", "2", "schema-version"),
                               ("edgefl.schema", "\u0661", "schema-version"),
                               ("round", "-1", "bad-metadata"),
                               ("round", "\u00b2", "bad-metadata"),  # superscript two
                               ("round", "\u0661\u0662", "bad-metadata"),  # Arabic-Indic 12
                               ("round", "\u2460", "bad-metadata"),  # circled one
                               ("round", "7\n", "bad-metadata"),
                               ("round", "9" * 19, "bad-metadata"),
                               ("num_examples", "1e9", "bad-metadata"),
                               ("num_examples", " 12", "bad-metadata"),
                               ("client_id", "x" * 257, "bad-metadata"),
                               ("metrics", "[1]", "bad-metadata"),
                               ("params", "null", "bad-metadata")]:
        bad = dict(meta)
        bad[key] = value
        with pytest.raises(WireError) as info:
            decode_message(encode_tensors(tensors, bad))
        assert info.value.reason == reason
    with pytest.raises(WireError) as info:
        decode_message(encode_tensors(tensors, {}))
    assert info.value.reason == "not-edgefl"


def test_random_mutations_never_escape_as_other_errors():
    ok = encode_message(golden_message())
    rng = np.random.RandomState(0)
    for _ in range(500):
        b = bytearray(ok)
        for _ in range(rng.randint(1, 4)):
            b[rng.randint(len(b))] = rng.randint(256)
        cut = rng.randint(len(b) + 1) if rng.rand() < 0.3 else len(b)
        try:
            decode_message(bytes(b[:cut]))
        except WireError:
            pass
