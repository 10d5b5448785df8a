"""Hypothesis: JSON of every type in every param an agent reads from a round announcement or a
status message. The agent never raises and never fails inside (no ``internal`` line): a
malformed message is refused or ignored with the agent's model and state as they were, and the
genuine announcement that follows still gets a contribution the aggregator accepts."""
from collections import OrderedDict

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings, strategies as st  # noqa: E402

from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult  # noqa: E402
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish  # noqa: E402
from edgefl.runtime.schema import INBOUND_PARAMS  # noqa: E402
from edgefl.runtime.wire import Message, decode_message, encode_message  # noqa: E402

MODEL = OrderedDict([("fc.bias", np.arange(3, dtype=np.float32)),
                     ("fc.weight", np.ones((3, 2), np.float32))])

scalars = (st.none() | st.booleans() | st.integers(-2 ** 80, 2 ** 80)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from([u"a", u"xax", u"", u"\ud800", u"a" * 300]))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=8)
# names inside the objects the agent hands on: the codec's and the trainer's options
NESTED = ["codec_options.rate", "codec_options.ratio", "codec_options.stochastic", "train.epochs",
          "train.lr", "delta.options"]


def _aggregator(codec="int8"):
    cfg = AggregatorConfig("fed", rounds=3, min_clients=1, clients=["a", "b"], codec=codec,
                           train={"epochs": 1, "lr": 0.1})
    agg = AggregatorCore(cfg, MODEL)
    actions = agg.start(0.0)
    return agg, [a for a in actions if isinstance(a, Publish) and a.topic.endswith("/round")][-1]


def _with_param(payload, path, value):
    msg = decode_message(payload)
    head, _, key = path.partition(".")
    if key:
        inner = msg.params.get(head)
        msg.params[head] = dict(inner) if isinstance(inner, dict) else {}
        msg.params[head][key] = value
    else:
        msg.params[head] = value
    return encode_message(msg)


def _contribute(agg, agent, announcement):
    """The agent's update for the genuine announcement, accepted by the aggregator."""
    job = agent.on_message(announcement.topic, announcement.payload)
    assert job is not None and job.round == agg.round, agent.log
    local = OrderedDict((n, v + np.float32(0.5)) for n, v in job.global_model.items())
    topic, update = agent.on_trained(job, TrainResult(local, 7, {"loss": 0.5}))
    answers = [decode_message(a.payload) for a in agg.on_message(topic, update, 1.0)
               if isinstance(a, Publish) and "/status/" in a.topic]
    assert answers[0].params["accepted"], answers[0].params


def _no_internal(agent):
    assert not any("internal" in text for _, text in agent.log), agent.log


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(INBOUND_PARAMS["round"]) + NESTED), json_values)
@example(field="sampled", value=0)
@example(field="sampled", value=u"xax")  # a string holding the client id is no sample
@example(field="train", value=5)
@example(field="codec_options", value=[])
@example(field="codec_options.rate", value=u"x")
@example(field="final", value=u"no")
def test_any_json_in_any_announcement_param(field, value):
    # Prepare: the genuine round-1 announcement with one param replaced (unsigned federation:
    # the tensors still match their digest, so the param itself is what the agent meets).
    agg, genuine = _aggregator("int8")
    agent = AgentCore(AgentConfig("fed", "a"))
    before = agent.to_bytes()
    # Execute
    job = agent.on_message(genuine.topic, _with_param(genuine.payload, field, value))
    # Assert: refused with the state untouched, or taken and trainable into an update
    _no_internal(agent)
    if job is None:
        if any("refused" in text for _, text in agent.log):
            assert agent.to_bytes() == before and agent.model_round == 0 and not agent.done
        if not agent.done:  # the genuine announcement still gets its contribution
            _contribute(agg, agent, genuine)
        return
    local = OrderedDict((n, v + np.float32(0.5)) for n, v in job.global_model.items())
    topic, update = agent.on_trained(job, TrainResult(local, 7, {"loss": 0.5}))
    assert decode_message(update).round == job.round == 1


def _status(round_, params):
    return encode_message(Message(kind="status", federation="fed", round=round_, client_id="a",
                                  params=params))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(INBOUND_PARAMS["status"])), json_values)
@example(field="accepted", value=u"false")
@example(field="reason", value=[u"duplicate:"])
def test_any_json_in_any_status_param(field, value):
    # Prepare: an update sent for round 1, waiting for its status
    agg, genuine = _aggregator("none")
    agent = AgentCore(AgentConfig("fed", "a"))
    job = agent.on_message(genuine.topic, genuine.payload)
    agent.on_trained(job, TrainResult(job.global_model, 3, {}))
    params = {"accepted": True, "reason": "", "current_round": 1}
    params[field] = value
    # Execute
    agent.on_message(agent.topics.status("a"), _status(1, params))
    # Assert: only a well-typed status answers the pending update
    _no_internal(agent)
    well_typed = (type(params["accepted"]) is bool and isinstance(params["reason"], str)
                  and len(params["reason"]) <= 4096 and type(params["current_round"]) is int
                  and 0 <= params["current_round"] <= 2 ** 53)
    if well_typed:
        try:
            params["reason"].encode("utf-8")
        except UnicodeEncodeError:
            well_typed = False
    assert (agent.pending is None) == well_typed
    assert [s[:2] for s in agent.statuses] == ([(1, params["accepted"])] if well_typed else [])


def test_a_flood_of_statuses_keeps_only_the_newest():
    agent = AgentCore(AgentConfig("fed", "a"))
    for i in range(2500):
        agent.on_message(agent.topics.status("a"), _status(i, {"accepted": False, "reason": "x"}))
    assert len(agent.statuses) == 1000 and agent.statuses[-1][0] == 2499
