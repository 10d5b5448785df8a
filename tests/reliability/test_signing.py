"""HMAC-SHA256 update signatures: valid ones verify, any change to any field or tensor byte is
refused, keys are per client (A's key cannot sign for B)."""

from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime import signing
from edgefl.runtime.wire import Message, decode_message, encode_message


def _update(client="client-000", round_=3):
    rng = np.random.RandomState(0)
    tensors = OrderedDict(
        [("fc.weight", rng.randn(4, 3).astype(np.float32)), ("fc.bias", np.zeros(4, np.float32))]
    )
    return Message(
        kind="update",
        federation="fed",
        round=round_,
        client_id=client,
        base_digest="ab" * 32,
        num_examples=50,
        encoding="none",
        metrics={"loss": 0.25},
        params={"codec": {}},
        tensors=tensors,
    )


@pytest.fixture
def keys():
    return {"client-000": signing.generate_key(), "client-001": signing.generate_key()}


def test_signed_update_survives_the_wire_and_verifies(keys):
    keyring = signing.Keyring.from_hex(keys)
    msg = signing.sign_message(signing.key_from_hex(keys["client-000"]), _update())
    decoded = decode_message(encode_message(msg))
    assert signing.verify_message(keyring, decoded) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: setattr(m, "round", m.round + 1),
        lambda m: setattr(m, "num_examples", 10_000),
        lambda m: setattr(m, "base_digest", "cd" * 32),
        lambda m: m.metrics.update(loss=0.0),
        lambda m: m.params.update(codec={"k": 1}),
        lambda m: m.tensors.__setitem__("fc.bias", m.tensors["fc.bias"] + np.float32(1e-7)),
        lambda m: m.tensors.__setitem__("fc.weight", m.tensors["fc.weight"].reshape(3, 4)),
        lambda m: m.tensors.__setitem__("extra", np.zeros(1, np.float32)),
    ],
    ids=["round", "examples", "digest", "metrics", "params", "tensor-bytes", "tensor-shape", "extra-tensor"],
)
def test_any_change_is_refused(keys, tamper):
    keyring = signing.Keyring.from_hex(keys)
    msg = decode_message(
        encode_message(signing.sign_message(signing.key_from_hex(keys["client-000"]), _update()))
    )
    msg.tensors = OrderedDict((k, np.array(v)) for k, v in msg.tensors.items())
    tamper(msg)
    assert signing.verify_message(keyring, msg) == "bad signature"


def test_bit_flip_in_encoded_bytes_is_refused_or_undecodable(keys):
    keyring = signing.Keyring.from_hex(keys)
    blob = bytearray(
        encode_message(signing.sign_message(signing.key_from_hex(keys["client-000"]), _update()))
    )
    outcomes = set()
    for pos in range(8, len(blob), 7):
        flipped = bytearray(blob)
        flipped[pos] ^= 0x10
        try:
            msg = decode_message(bytes(flipped))
        except Exception as exc:  # WireError: refused before the signature is even looked at
            outcomes.add(type(exc).__name__)
            continue
        reason = signing.verify_message(keyring, msg)
        assert reason is not None, f"bit flip at byte {pos} verified"
        outcomes.add(reason)
    assert "bad signature" in outcomes


def test_client_cannot_sign_for_another(keys):
    keyring = signing.Keyring.from_hex(keys)
    forged = signing.sign_message(signing.key_from_hex(keys["client-000"]), _update(client="client-001"))
    assert signing.verify_message(keyring, decode_message(encode_message(forged))) == "bad signature"


def test_unsigned_and_unknown_clients_are_refused(keys):
    keyring = signing.Keyring.from_hex(keys)
    assert signing.verify_message(keyring, _update()) == "update is not signed"
    stranger = signing.sign_message(
        signing.key_from_hex(signing.generate_key()), _update(client="client-999")
    )
    assert "no signing key" in signing.verify_message(keyring, stranger)


def test_bad_key_text_names_the_fix():
    with pytest.raises(ValueError, match="federation init"):
        signing.key_from_hex("not hex")
    with pytest.raises(ValueError, match="at least 16"):
        signing.key_from_hex("abcd")


def test_keyring_file_round_trip(tmp_path, keys):
    import json

    path = tmp_path / "keyring.json"
    path.write_text(json.dumps({"keys": keys}))
    ring = signing.Keyring.from_file(path)
    assert len(ring) == 2 and "client-001" in ring
    assert ring.key_for("client-001") == signing.key_from_hex(keys["client-001"])
