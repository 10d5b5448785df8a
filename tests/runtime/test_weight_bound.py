"""Each client's FedAvg weight is bounded by the example count it declared: an update claiming
more is rejected with a reason (``weight-bound``); an honest agent never claims more than its
declaration (Python 3.6 compatible)."""
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.wire import decode_message

DECLARED = {"a": 100, "b": 300, "liar": 200}


def announcement(actions):
    return [a for a in actions if isinstance(a, Publish) and a.topic.endswith("/round")][-1]


def aggregator(model, clients=tuple(sorted(DECLARED))):
    cfg = AggregatorConfig("fed", rounds=2, clients=list(clients), min_clients=2, deadline_s=10,
                           max_examples=300, client_max_examples=dict(DECLARED))
    agg = AggregatorCore(cfg, model)
    agg.start(0.0)
    return agg


def update(agg, client, shift, claimed, declared=0):
    ag = AgentCore(AgentConfig("fed", client, max_examples=declared))
    job = ag.on_message(agg.topics.round, agg._announce().payload)
    local = OrderedDict((k, v + np.float32(shift)) for k, v in job.global_model.items())
    return ag.on_trained(job, TrainResult(local, claimed, {}))


def verdict(actions):
    (msg,) = [decode_message(a.payload) for a in actions
              if isinstance(a, Publish) and "/status/" in a.topic]
    return msg.params["accepted"], msg.params.get("reason", "")


def test_claims_above_the_declared_count_are_rejected_and_the_round_is_honest(small_model):
    agg = aggregator(small_model)
    assert verdict(agg.on_message(*update(agg, "a", 1.0, 100), now=1.0)) == (True, "")
    ok, reason = verdict(agg.on_message(*update(agg, "liar", 50.0, 10 ** 9), now=1.0))
    assert not ok and reason == "weight-bound: 'liar' claims 1000000000 examples, it declared at most 200"
    ok, reason = verdict(agg.on_message(*update(agg, "liar", 50.0, 201), now=1.0))
    assert not ok and reason == "weight-bound: 'liar' claims 201 examples, it declared at most 200"
    assert verdict(agg.on_message(*update(agg, "b", 3.0, 300), now=1.0)) == (True, "")
    assert agg.round == 1  # the liar never got in: the round waits for its deadline
    announcement(agg.tick(11.0))
    shift = (1.0 * 100 + 3.0 * 300) / 400.0
    for n, v in small_model.items():
        np.testing.assert_allclose(agg.global_model[n], v + shift, atol=1e-5)
    assert agg.history[0]["clients"] == ["a", "b"] and agg.history[0]["rejected"] == 2
    assert agg.rejections == {"weight-bound": 2}


def test_a_client_missing_from_the_table_gets_the_ceiling(small_model):
    agg = aggregator(small_model, clients=())  # anyone may contribute
    ok, reason = verdict(agg.on_message(*update(agg, "stranger", 1.0, 301), now=1.0))
    assert not ok and reason.startswith("num-examples:")
    assert verdict(agg.on_message(*update(agg, "stranger", 1.0, 300), now=1.0)) == (True, "")


def test_an_agent_with_more_data_claims_its_declaration(small_model):
    agg = aggregator(small_model)
    topic, payload = update(agg, "a", 1.0, 5000, declared=100)
    assert decode_message(payload).num_examples == 100
    assert verdict(agg.on_message(topic, payload, now=1.0)) == (True, "")
    assert decode_message(update(agg, "b", 1.0, 7, declared=300)[1]).num_examples == 7


@pytest.mark.parametrize("bad", [{"a": 0}, {"a": -5}, {"a": "100"}, {"a": True}, [100]])
def test_bad_declarations_are_refused(small_model, bad):
    with pytest.raises(EdgeRuntimeError, match="client_max_examples"):
        AggregatorConfig("fed", client_max_examples=bad).check()
    with pytest.raises(EdgeRuntimeError, match="max_examples must be a positive integer"):
        AggregatorConfig("fed", max_examples=0).check()
    with pytest.raises(EdgeRuntimeError, match="max_examples must be a non-negative integer"):
        AgentCore(AgentConfig("fed", "a", max_examples=-1))
