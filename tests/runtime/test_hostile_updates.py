"""Updates that used to stop the aggregator or poison a round: each is now a rejection with a
reason, and an unexpected error inside the aggregator is one message's rejection (``internal``),
never the process's end. Runs on the edge stack too (Python 3.6)."""
import json
import struct
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.fold import Fold
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Persist
from edgefl.runtime.loops import open_aggregator, serve_aggregator
from edgefl.runtime.quarantine import Quarantine
from edgefl.runtime.transport.memory import MemoryBroker, MemoryTransport
from edgefl.runtime.wire import decode_tensors, encode_tensors, payload_digest


def _rewrite_metadata(payload, **fields):
    """The same update with raw ``__metadata__`` strings replaced (as a hostile client would)."""
    tensors, meta = decode_tensors(payload)
    meta = dict(meta)
    meta.update(fields)
    return encode_tensors(OrderedDict((k, np.array(v)) for k, v in tensors.items()), meta)


def _rewrite_header(payload, name, key, value):
    (n,) = struct.unpack("<Q", payload[:8])
    header = json.loads(payload[8:8 + n].decode("utf-8"))
    header[name][key] = value
    raw = json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw + payload[8 + n:]


def _started(small_model, **kw):
    cfg = AggregatorConfig("fed", rounds=kw.pop("rounds", 2), min_clients=2, clients_per_round=2,
                           **kw)
    agg = AggregatorCore(cfg, small_model)
    agg.start(0.0)
    return agg


@pytest.mark.parametrize("field,value,code", [
    ("round", u"\u00b9", "wire"),  # superscript one: isdigit() but not int()
    ("round", u"\u2460", "wire"),  # circled one
    ("round", u"\u0661", "wire"),  # Arabic-Indic one: int() reads it as 1
    ("num_examples", u"\uff11\uff10", "wire"),  # fullwidth 10
    ("metrics", json.dumps({"loss": "0.5"}), "metrics"),
    ("metrics", json.dumps({"loss": None}), "metrics"),
    ("metrics", json.dumps({"loss": [1.0]}), "metrics"),
    ("metrics", json.dumps({"loss": {"a": 1}}), "metrics"),
    ("metrics", json.dumps({"loss": True}), "metrics"),
    ("metrics", '{"loss": ' + "9" * 400 + "}", "metrics"),  # int too large for a float
    ("metrics", '{"loss": NaN}', "metrics"),
    ("metrics", '{"loss": 1e999}', "metrics"),
    ("metrics", json.dumps({"m%d" % i: 1.0 for i in range(65)}), "metrics"),
    ("params", json.dumps({"codec": [1]}), "params"),
    ("params", json.dumps({"codec": "none"}), "params"),
    ("client_id", "a" * 300, "wire"),
])
def test_metadata_type_and_range_confusion_is_a_rejection(kit, small_model, field, value, code):
    agg = _started(small_model)
    topic, good = kit.make_update(agg, "a", 0.5)
    actions = agg.on_message(topic, _rewrite_metadata(good, **{field: value}), 1.0)
    ((cid, ok, reason),) = kit.statuses(actions)
    assert (cid, ok) == ("a", False) and reason.startswith(code + ":"), reason
    assert not agg.accepted and agg.rejections == {code: 1}


@pytest.mark.parametrize("key,value,code", [
    ("dtype", ["F32"], "wire: unsupported-dtype"),  # unhashable: used to raise TypeError
    ("dtype", {"F32": 1}, "wire: unsupported-dtype"),
    ("dtype", None, "wire: unsupported-dtype"),
    ("shape", [0, 10 ** 30], "wire: bad-shape"),  # zero-sized, reshape used to raise
    ("shape", [0, 2 ** 62, 4], "wire: bad-shape"),
    ("shape", "big", "wire: bad-shape"),
    ("shape", [5.0], "wire: bad-shape"),
    ("data_offsets", [0, "20"], "wire: bad-offsets"),
])
def test_tensor_header_type_confusion_is_a_rejection(kit, small_model, key, value, code):
    agg = _started(small_model)
    topic, good = kit.make_update(agg, "a", 0.5)
    actions = agg.on_message(topic, _rewrite_header(good, "fc.bias", key, value), 1.0)
    ((_, ok, reason),) = kit.statuses(actions)
    assert not ok and reason.startswith(code), reason


def test_integer_metrics_are_numbers_and_the_round_closes(kit, small_model):
    # Prepare: two clients, one reports an int loss, the other a float.
    agg = _started(small_model)
    for cid, loss in (("a", 3), ("b", 0.5)):
        topic, good = kit.make_update(agg, cid, 0.5)
        payload = _rewrite_metadata(good, metrics=json.dumps({"loss": loss}))
        # Execute
        actions = agg.on_message(topic, payload, 1.0)
    # Assert: the round closed; the summary weighs the two losses by examples (10 each).
    assert agg.round == 2 and kit.announce(actions).retain
    assert agg.history[0]["client_metrics"] == {"loss": pytest.approx(1.75)}


def test_a_poisoned_state_file_from_an_older_version_still_closes_its_round(kit, small_model):
    # Prepare: a state persisted with one accepted update whose metrics hold a string and a
    # huge int (what versions before the schema accepted).
    agg = _started(small_model)
    topic, good = kit.make_update(agg, "a", 0.5)
    agg.on_message(topic, good, 1.0)
    key = ("a", 1)
    n, _ = agg.accepted[key]
    agg.accepted[key] = (n, {"loss": "0.5", "big": 10 ** 400, "acc": 0.25})
    restored = AggregatorCore.from_bytes(agg.to_bytes())
    # Execute: the second update closes the round.
    topic, good = kit.make_update(restored, "b", 0.5)
    restored.on_message(topic, good, 2.0)
    # Assert: closed; of the poisoned entry only its finite number counted (b's loss is 0.5).
    assert restored.round == 2
    assert restored.history[0]["client_metrics"] == {"acc": pytest.approx(0.125),
                                                     "loss": pytest.approx(0.25)}


def test_an_unexpected_error_is_one_rejection_and_changes_nothing(kit, small_model, monkeypatch):
    # Prepare: a's update is in; aggregation itself fails when b's update would close the round
    # (after b was folded into the running sum).
    agg = _started(small_model)
    agg.on_message(*kit.make_update(agg, "a", 0.5), now=1.0)
    model = OrderedDict((k, v.copy()) for k, v in agg.global_model.items())
    sums = OrderedDict((k, v.copy()) for k, v in agg.fold.exact_sums().items())
    topic, good = kit.make_update(agg, "b", 0.5)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(Fold, "mean_blocks", broken)
    # Execute
    actions = agg.on_message(topic, good, 2.0)
    # Assert: b is told "internal", nothing is persisted, the round, the running sum (b taken
    # out again, exactly) and the model are unchanged, and the log names the message's sha256.
    ((cid, ok, reason),) = kit.statuses(actions)
    assert (cid, ok) == ("b", False) and reason.startswith("internal: ZeroDivisionError"), reason
    assert not any(isinstance(a, Persist) for a in actions)
    assert agg.round == 1 and list(agg.accepted) == [("a", 1)] and not agg.history
    assert all(np.array_equal(agg.fold.exact_sums()[k], v) for k, v in sums.items())
    assert agg.fold.count == 1 and agg.fold.weight == 10
    assert all(np.array_equal(agg.global_model[k], v) for k, v in model.items())
    level, line = agg.log[-1]
    assert level == "error" and "sha256 " in line and "internal: ZeroDivisionError" in line
    # ... and once the cause is gone the same update closes the round, with the model of an
    # aggregator that never failed.
    monkeypatch.undo()
    agg.on_message(topic, good, 3.0)
    assert agg.round == 2 and agg.history[0]["clients"] == ["a", "b"]
    ref = _started(small_model)
    ref.on_message(topic, good, 1.0)
    ref.on_message(*kit.make_update(ref, "a", 0.5), now=1.0)
    assert all(agg.global_model[k].tobytes() == ref.global_model[k].tobytes() for k in model)


def test_a_retained_update_is_ignored_and_cleared(kit, small_model):
    # Prepare: a poison update published retained on a's update topic before the aggregator
    # starts (it would come back on every restart).
    broker = MemoryBroker()
    agg = _started(small_model)
    topic, good = kit.make_update(agg, "a", 0.5)
    poison = _rewrite_metadata(good, round=u"\u00b2")
    MemoryTransport(broker, "evil").connect()
    broker.publish("evil", topic, poison, 1, True)
    # Execute: the aggregator's loop subscribes and gets the retained message.
    lines = []
    serve_aggregator(agg, MemoryTransport(broker, "agg"), timeout=0.3, poll_s=0.01,
                     log=lambda *line: lines.append(line))
    # Assert: no status, nothing accepted or rejected, the retained message is gone, logged.
    assert topic not in broker.retained
    assert not agg.accepted and agg.rejections == {}
    assert not [t for _, t, _ in broker.published if "/status/" in t]
    assert any("ignored a retained message on " + topic in text for _, text in lines)


class _Died(BaseException):
    """Stands for the process dying inside the aggregator (nothing catches it)."""


def test_a_message_in_flight_when_the_process_died_is_quarantined(kit, small_model, tmp_path,
                                                                  monkeypatch):
    # Prepare: a's update kills the aggregator while it is processed (before the fix of some
    # future bug); the agent resends it after the restart.
    state = str(tmp_path / "agg.state")
    broker = MemoryBroker()
    agg = _started(small_model)
    poison_topic, poison = kit.make_update(agg, "a", 0.5)
    original = AggregatorCore._on_update

    def dies_on_poison(self, client, topic, payload, now):
        if payload == poison:
            raise _Died()
        return original(self, client, topic, payload, now)

    monkeypatch.setattr(AggregatorCore, "_on_update", dies_on_poison)
    sender = MemoryTransport(broker, "a")
    sender.connect()
    session = MemoryTransport(broker, "agg")  # the aggregator's persistent session queues it
    session.connect()
    session.subscribe(agg.topics.updates, 1)
    session.close()
    sender.publish(poison_topic, poison)
    with pytest.raises(_Died):
        serve_aggregator(agg, MemoryTransport(broker, "agg"), state_path=state, timeout=2,
                         poll_s=0.01)
    # Execute: restart from the state file; the agent resends, then b sends its update.
    restarted = open_aggregator(agg.cfg, small_model, state)
    sender.publish(poison_topic, poison)
    sender.publish(*kit.make_update(restarted, "b", 0.5))
    sender.publish(*kit.make_update(restarted, "c", 0.5))
    lines = []
    serve_aggregator(restarted, MemoryTransport(broker, "agg"), state_path=state, timeout=0.5,
                     poll_s=0.01, log=lambda *line: lines.append(line))
    # Assert: the resend is rejected as quarantined (a status says so), the round closes with
    # b and c, and the quarantine outlives another restart.
    quarantined = [t for lvl, t in lines if "quarantined" in t]
    assert quarantined and "stopped while processing message sha256" in quarantined[0]
    assert restarted.rejections == {"quarantined": 1}
    assert restarted.history[0]["clients"] == ["b", "c"]
    assert Quarantine(state).digests == {payload_digest(poison)}


def test_quarantine_files(tmp_path):
    state = str(tmp_path / "s")
    q = Quarantine(state)
    assert q.recover() is None
    digest = q.begin(b"one")
    q.end()
    q.begin(b"two")  # the process dies here
    q.close()
    again = Quarantine(state)
    assert again.recover() == payload_digest(b"two") and digest not in again.digests
    assert again.recover() is None  # found once; the in-flight file is empty now
    assert Quarantine(state).digests == {payload_digest(b"two")}
