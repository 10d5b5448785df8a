"""One message, or one round's training, never stops the agent: an unexpected exception is a
logged line with the message's sha256, and the agent keeps the model and state it had (nothing
half-changed, nothing persisted half-way). Python 3.6 compatible (the edge suite runs it)."""
from collections import OrderedDict

import numpy as np

from edgefl.runtime import agent as agent_module
from edgefl.runtime.agent import AgentConfig, AgentCore, Trainer, TrainResult
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish
from edgefl.runtime.loops import run_agent
from edgefl.runtime.transport.memory import MemoryBroker, MemoryTransport
from edgefl.runtime.wire import decode_message, encode_message, payload_digest

MODEL = OrderedDict([("fc.bias", np.arange(3, dtype=np.float32)),
                     ("fc.weight", np.ones((3, 2), np.float32))])


def _announcement(codec="none"):
    cfg = AggregatorConfig("fed", rounds=2, min_clients=1, clients=["a"], codec=codec)
    agg = AggregatorCore(cfg, MODEL)
    return agg, [a for a in agg.start(0.0) if isinstance(a, Publish) and a.topic.endswith("/round")][-1]


def test_an_exception_inside_the_agent_leaves_its_state_as_it_was(monkeypatch):
    # Prepare: handling fails after the model was loaded and the round taken (TrainJob raises)
    _, ann = _announcement()
    agent = AgentCore(AgentConfig("fed", "a"))
    before = agent.to_bytes()

    def boom(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(agent_module, "TrainJob", boom)
    # Execute
    assert agent.on_message(ann.topic, ann.payload) is None
    # Assert: one warning naming the message; the model, round and state as before
    (level, text), = [line for line in agent.log if "internal" in line[1]]
    assert level == "warn" and payload_digest(ann.payload) in text and "RuntimeError" in text
    assert agent.to_bytes() == before and agent.model is None and agent.current is None
    assert agent.model_round == 0 and agent.want_snapshot
    # ... and the same announcement is handled once the fault is gone
    monkeypatch.undo()
    job = agent.on_message(ann.topic, ann.payload)
    assert job is not None and job.round == 1 and agent.model_round == 1


def test_a_round_the_codec_cannot_encode_is_refused_before_training():
    _, ann = _announcement()
    msg = decode_message(ann.payload)
    msg.params["codec_options"] = {"window": "x"}  # a keyword the codec "none" does not take
    agent = AgentCore(AgentConfig("fed", "a"))
    assert agent.on_message(ann.topic, encode_message(msg)) is None
    assert agent.model_round == 0 and any("codec" in t for _, t in agent.log)
    assert len(agent.outbox) == 1  # the refusal, on the agent's status topic


class FailsOnce(Trainer):
    """Raises on its first round (as a trainer does on options it cannot use), then trains."""

    def __init__(self):
        self.calls = 0

    def train(self, global_model, options):
        self.calls += 1
        if self.calls == 1:
            raise ValueError("invalid literal for int(): 'many'")
        return TrainResult(OrderedDict((n, v + np.float32(1)) for n, v in global_model.items()),
                           4, {})


def test_a_round_whose_training_fails_is_skipped_and_the_agent_goes_on(tmp_path):
    # Prepare: the round-1 announcement retained; the trainer fails the first time
    broker = MemoryBroker()
    agg, ann = _announcement("int8")
    broker.publish("agg", ann.topic, ann.payload, 1, True)
    agent = AgentCore(AgentConfig("fed", "a"))
    lines = []

    def log(level, text):
        lines.append((level, text))
        if "training failed" in text:  # the aggregator re-announces (as after its restart)
            broker.publish("agg", ann.topic, ann.payload, 1, True)

    # Execute: until the update is out (stop), bounded by a generous timeout against a hang
    state = str(tmp_path / "agent.state")
    sent = run_agent(agent, MemoryTransport(broker, "a"), FailsOnce(), state_path=state,
                     stop=lambda: agent.pending is not None, timeout=60, log=log, poll_s=0.01)
    # Assert: the failure is one warning; the agent trained the re-announced round and sent it
    failed = [t for lvl, t in lines if "training failed" in t]
    assert len(failed) == 1 and "ValueError" in failed[0] and "round 1" in failed[0]
    assert sent == 1 and agent.last_round == 1
    assert [t for _, t, _ in broker.published].count(agent.topics.update("a")) == 1


def test_a_model_of_another_layout_or_type_is_refused_and_the_held_one_kept():
    # Prepare: an agent holding round 1's model; variants of it whose digest is recomputed, so
    # only the model check can tell them apart from a genuine announcement
    from edgefl.runtime.wire import model_digest

    _, ann = _announcement()
    agent = AgentCore(AgentConfig("fed", "a"))
    agent.on_message(ann.topic, ann.payload)
    held = agent.to_bytes()
    variants = [
        lambda t: t.update([("fc.bias", t["fc.bias"].astype(np.float16))]),
        lambda t: t.update([("fc.bias", np.array([0, np.nan, 2], np.float32))]),
        lambda t: t.update([("fc.bias", np.zeros(4, np.float32))]),
        lambda t: t.update([("extra", np.zeros(1, np.float32))]),
        lambda t: t.pop("fc.bias"),
    ]
    for i, change in enumerate(variants):
        msg = decode_message(ann.payload)
        msg.tensors = OrderedDict((k, np.array(v)) for k, v in msg.tensors.items())
        change(msg.tensors)
        msg.round, msg.base_digest = 2 + i, model_digest(msg.tensors)
        # Execute + Assert: refused with a reason, the held model and state unchanged
        assert agent.on_message(ann.topic, encode_message(msg)) is None
        assert agent.to_bytes() == held and agent.model_round == 1, agent.log
        assert "model:" in agent.log[-1][1]
