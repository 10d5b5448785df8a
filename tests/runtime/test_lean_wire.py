"""The lean downlink: announcements and status replies carry what a client needs and nothing it
does not (no round summary, no default params, no sample list when everyone is in the round), and
nothing a receiver checks is weakened (Python 3.6 compatible)."""
from collections import OrderedDict

import numpy as np

from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish
from edgefl.runtime.announce import AnnouncementSigner, AnnouncementVerifier, generate_key_pair
from edgefl.runtime.schema import PARAM_DEFAULTS
from edgefl.runtime.wire import decode_message, decode_tensors, encode_message, encode_tensors

PRIVATE, PUBLIC = generate_key_pair("python")
IDS = ["a", "b", "c"]


def published(actions, suffix):
    return [a for a in actions if isinstance(a, Publish) and a.topic.endswith(suffix)]


def aggregator(model, **kw):
    cfg = dict(rounds=3, min_clients=3, clients=IDS, clients_per_round=3, codec="fedfq",
               codec_options={"rate": 0.2}, downlink_codec="fedfq", downlink_options={"rate": 0.2},
               train={"lr": 0.1})
    cfg.update(kw)
    return AggregatorCore(AggregatorConfig("fed", **cfg), model)


def one_round(agg, model, actions):
    """Every sampled client trains the announcement (from its own copy of ``model`` and the
    snapshot); returns (statuses, next actions, the updates sent)."""
    payload = published(actions, "/round")[-1].payload
    snapshot = published(actions, "/snapshot")
    statuses, out, updates = [], [], []
    for i, cid in enumerate(agg.sampled):
        ag = AgentCore(AgentConfig("fed", cid))
        if snapshot:
            ag.on_message(agg.topics.snapshot, snapshot[-1].payload)
        else:
            ag.preload(model)
        job = ag.on_message(agg.topics.round, payload)
        local = OrderedDict((k, v + np.float32(0.1 * (i + 1))) for k, v in job.global_model.items())
        updates.append(ag.on_trained(job, TrainResult(local, 10, {"loss": 1.0})))
        got = agg.on_message(*updates[-1], now=1.0)
        statuses += published(got, "/status/" + cid)
        out += got
    return statuses, out, updates


def test_a_round_for_every_enrolled_client_names_none_and_still_refuses_outsiders(small_model):
    agg = aggregator(small_model)
    actions = agg.start(0.0)
    msg = decode_message(published(actions, "/round")[-1].payload)
    _, meta = decode_tensors(published(actions, "/round")[-1].payload)
    assert "sampled" not in msg.params and "metrics" not in meta and msg.metrics == {}
    assert set(msg.params) == {"codec", "codec_options", "deadline", "delta", "epoch", "train"}
    assert agg.sampled == IDS  # the aggregator's own check still names them
    outsider = AgentCore(AgentConfig("fed", "z"))
    outsider.preload(small_model)
    job = outsider.on_message(agg.topics.round, published(actions, "/round")[-1].payload)
    local = OrderedDict((k, v + np.float32(1.0)) for k, v in job.global_model.items())
    refused = agg.on_message(*outsider.on_trained(job, TrainResult(local, 10, {})), now=1.0)
    status = decode_message(published(refused, "/status/z")[0].payload)
    assert not status.params["accepted"] and status.params["reason"].startswith("not-sampled:")
    assert not agg.accepted


def test_a_sample_smaller_than_the_enrolment_is_listed_and_async_rounds_list_everyone(small_model):
    agg = aggregator(small_model, clients_per_round=2, min_clients=2)
    msg = decode_message(published(agg.start(0.0), "/round")[-1].payload)
    assert msg.params["sampled"] == agg.sampled and len(agg.sampled) == 2
    left_out = (set(IDS) - set(agg.sampled)).pop()
    ag = AgentCore(AgentConfig("fed", left_out))
    ag.preload(small_model)
    assert ag.on_message(agg.topics.round, published(agg.start(0.0), "/round")[-1].payload) is None
    async_agg = aggregator(small_model, mode="async", buffer_size=2)
    msg = decode_message(published(async_agg.start(0.0), "/round")[-1].payload)
    assert msg.params["sampled"] == IDS and msg.params["mode"] == "async"  # async checks no sample


def test_the_round_summary_stays_off_the_announcement(small_model):
    agg = aggregator(small_model)
    actions = agg.start(0.0)
    for _ in range(3):
        _, actions, _ = one_round(agg, small_model, actions)
    assert len(agg.history) == 3 and agg.history[-1]["clients"] == IDS
    final = decode_message(published(actions, "/round")[-1].payload)
    assert final.params["final"] is True and final.metrics == {} and "sampled" not in final.params
    snapshot = decode_message(published(actions, "/snapshot")[-1].payload)
    assert snapshot.metrics == {} and snapshot.encoding == "none"


def test_status_replies_carry_the_verdict_alone(small_model):
    agg = aggregator(small_model)
    actions = agg.start(0.0)
    statuses, actions, updates = one_round(agg, small_model, actions)
    assert len(statuses) == 3
    for s in statuses:
        _, meta = decode_tensors(s.payload)
        assert sorted(meta) == ["client_id", "edgefl.schema", "federation", "kind", "params", "round"]
        msg = decode_message(s.payload)
        assert msg.params == {"accepted": True} and msg.round == 1 and len(s.payload) <= 160
    # round 1's update again, in round 2: its status names the round the aggregator is in
    got = agg.on_message(*updates[0], now=2.0)
    msg = decode_message(published(got, "/status/a")[0].payload)
    assert msg.round == 1 and msg.params["current_round"] == 2
    assert not msg.params["accepted"] and msg.params["reason"].startswith("stale-round:")


def _with_defaults_written(payload):
    """The announcement with every omitted param written at its reader default (as before)."""
    tensors, meta = decode_tensors(payload)
    msg = decode_message(payload)
    params = dict(msg.params)
    for name, default in PARAM_DEFAULTS["round"].items():
        params.setdefault(name, default)
    meta = dict(meta, params=encode_json(params), client_id="", num_examples="0", metrics="{}")
    return encode_tensors(OrderedDict((k, np.array(v)) for k, v in tensors.items()), meta)


def encode_json(obj):
    import json

    return json.dumps(obj, sort_keys=True)


def test_an_agent_reads_absent_params_as_their_defaults(small_model):
    agg = aggregator(small_model, downlink_codec="none", downlink_options={}, codec="none",
                     codec_options={}, train={})
    lean = published(agg.start(0.0), "/round")[-1].payload
    assert set(decode_message(lean).params) == {"deadline", "epoch"}
    jobs = []
    for payload in (lean, _with_defaults_written(lean)):
        ag = AgentCore(AgentConfig("fed", "a"))
        job = ag.on_message(agg.topics.round, payload)
        assert not ag.done and ag.model_digest == agg.digest
        _, update = ag.on_trained(job, TrainResult(job.global_model, 3, {}))
        jobs.append((job.round, job.options, decode_message(update).encoding))
    assert jobs[0] == jobs[1] == (1, {}, "none")


def test_signatures_cover_the_fields_not_their_json_layout(small_model):
    agg = aggregator(small_model, clients_per_round=2, min_clients=2)
    agg.announce_signer = AnnouncementSigner(PRIVATE, "python")
    payload = published(agg.start(0.0), "/round")[-1].payload
    verifier = AnnouncementVerifier(PUBLIC, "python")
    assert verifier.problem(decode_message(payload)) is None
    # the same fields laid out as the old writer did (spaced JSON, default metadata written)
    tensors, meta = decode_tensors(payload)
    msg = decode_message(payload)
    spaced = dict(meta, params=encode_json(msg.params), client_id="", num_examples="0", metrics="{}")
    relaid = encode_tensors(OrderedDict((k, np.array(v)) for k, v in tensors.items()), spaced)
    assert len(relaid) > len(payload) and verifier.problem(decode_message(relaid)) is None
    # dropping the sample list would open the round to everyone: the signature covers it
    opened = decode_message(payload)
    del opened.params["sampled"]
    assert verifier.problem(decode_message(encode_message(opened))).startswith("bad signature")
    # so does writing a default the aggregator left out (a different params object)
    final = decode_message(payload)
    final.params["final"] = False
    assert verifier.problem(decode_message(encode_message(final))).startswith("bad signature")
