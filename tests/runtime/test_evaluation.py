"""Central evaluation on the edge stack: onnxruntime scores global models; the round recorder."""
import json
import os
import threading
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult, Trainer
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore
from edgefl.runtime.config import load_model_tensors
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.evaluation import (BundleEvaluator, initializer_names_for, onnx_initializers,
                                       scores_from_logits)
from edgefl.runtime.loops import run_agent, serve_aggregator
from edgefl.runtime.round_log import CountingTransport, RoundRecorder, metrics_row
from edgefl.runtime.transport.memory import MemoryBroker, MemoryTransport
from edgefl.runtime.wire import decode_message, model_digest

BUNDLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tiny_bundle")
PREP = {"scale": 1 / 255.0, "mean": 0.5, "std": 0.25}  # tiny_bundle's manifest


def held_out(n=60, seed=1):
    rng = np.random.RandomState(seed)
    return (rng.rand(n, 1, 4, 4) * 255).astype(np.uint8), rng.randint(0, 3, n)


def forward(x, w1, w2, b2):
    """tiny_bundle's graph in numpy: Flatten, MatMul w1, Relu (features), Gemm w2 + b2."""
    flat = ((x.astype(np.float32) * np.float32(PREP["scale"]) - PREP["mean"]) / PREP["std"]).reshape(
        len(x), -1)
    feats = np.maximum(flat @ w1, 0)
    return feats, feats @ w2 + b2


def test_scores_from_logits_by_hand():
    logits = np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    s = scores_from_logits(logits, [0, 1, 0])
    # argmax ties pick the first class: right, wrong, wrong
    assert s["accuracy"] == pytest.approx(1 / 3) and s["examples"] == 3
    ce = [np.log(1 + np.exp(-2.0)), np.log(2.0), np.log(1 + np.exp(3.0))]
    assert s["loss"] == pytest.approx(np.mean(ce))


def test_initializers_are_read_without_the_onnx_package():
    # names and shapes as make_tiny_bundle.py writes them
    assert onnx_initializers(os.path.join(BUNDLE, "model.onnx")) == OrderedDict(
        [("w1", (16, 8)), ("w2", (8, 3)), ("b2", (3,))])


def test_global_tensors_map_to_initializers_by_name_or_suffix():
    inits = OrderedDict([("inner.body.0.weight", (4, 2)), ("inner.fc.weight", (3, 4)), ("fc.bias", (3,))])
    got = initializer_names_for(OrderedDict([("body.0.weight", np.zeros((4, 2))),
                                             ("fc.bias", np.zeros(3))]), inits)
    assert got == OrderedDict([("body.0.weight", "inner.body.0.weight"), ("fc.bias", "fc.bias")])
    with pytest.raises(EdgeRuntimeError, match="--eval-checkpoint"):
        initializer_names_for({"fc.weight": np.zeros((4, 3))}, inits)  # wrong shape
    with pytest.raises(EdgeRuntimeError, match="none by that name"):
        initializer_names_for({"conv.weight": np.zeros((4, 2))}, inits)


def test_head_models_are_scored_on_the_bundles_features():
    pytest.importorskip("onnxruntime")
    x, y = held_out()
    ev = BundleEvaluator(BUNDLE, x, y)
    rng = np.random.RandomState(3)
    head = OrderedDict([("classifier.weight", rng.randn(3, 8).astype(np.float32)),
                        ("classifier.bias", rng.randn(3).astype(np.float32))])
    got = ev.evaluate(head)
    feats, _ = forward(x, **onnx_weights())
    want = scores_from_logits(feats @ head["classifier.weight"].T + head["classifier.bias"], y)
    assert got["examples"] == 60 and got["accuracy"] == want["accuracy"]
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)


def onnx_weights():
    """tiny_bundle's weights, regenerated exactly as make_tiny_bundle.py draws them."""
    rng = np.random.RandomState(0)
    w1 = rng.randn(16, 8).astype(np.float32) * 0.5
    w2 = rng.randn(8, 3).astype(np.float32) * 0.5
    b2 = rng.randn(3).astype(np.float32) * 0.1
    return {"w1": w1, "w2": w2, "b2": b2}


def test_full_models_run_the_bundles_graph_with_the_new_weights():
    pytest.importorskip("onnxruntime")
    x, y = held_out()
    ev = BundleEvaluator(BUNDLE, x, y, batch_size=7)
    own = onnx_weights()
    rng = np.random.RandomState(5)
    new = OrderedDict((k, (v + rng.randn(*v.shape).astype(np.float32))) for k, v in own.items())
    got, base = ev.evaluate(new), ev.evaluate(OrderedDict(own))
    want = scores_from_logits(forward(x, new["w1"], new["w2"], new["b2"])[1], y)
    assert got["accuracy"] == want["accuracy"] and got["loss"] == pytest.approx(want["loss"], rel=1e-5)
    assert got["loss"] != pytest.approx(base["loss"], rel=1e-3)  # the new weights were used


class HeadNudge(Trainer):
    """Deterministic local 'training' of a head: a seeded step per client and round."""

    def __init__(self, seed):
        self.rng = np.random.RandomState(seed)

    def train(self, global_model, options):
        out = OrderedDict((k, v + self.rng.randn(*v.shape).astype(np.float32) * 0.5)
                          for k, v in global_model.items())
        return TrainResult(out, 10, {"train_loss": 1.0})


def test_the_recorder_scores_every_round_model_and_writes_it_everywhere(tmp_path):
    """Three head-mode rounds in memory: each row's accuracy is that of the model the next
    announcement carries, scored separately; the JSON lines and the retained status agree."""
    pytest.importorskip("onnxruntime")
    x, y = held_out()
    broker = MemoryBroker()
    watcher = MemoryTransport(broker, "watcher")
    watcher.connect()
    watcher.subscribe("edgefl/ev/round", 1)
    agg = AggregatorCore(AggregatorConfig("ev", rounds=3, min_clients=2, clients_per_round=2,
                                          deadline_s=30), load_model_tensors(BUNDLE))
    threads = [threading.Thread(target=run_agent, args=(AgentCore(AgentConfig("ev", cid)),
                                                        MemoryTransport(broker, cid), HeadNudge(i)),
                                kwargs=dict(timeout=20, poll_s=0.01))
               for i, cid in enumerate(("a", "b"))]
    for t in threads:
        t.start()
    transport = CountingTransport(MemoryTransport(broker, "agg"))
    metrics = tmp_path / "metrics.jsonl"
    seen = []
    recorder = RoundRecorder(agg, transport, BundleEvaluator(BUNDLE, x, y), str(metrics), then=seen.append)
    serve_aggregator(agg, transport, timeout=20, poll_s=0.01, on_round=recorder)
    for t in threads:
        t.join(25)
    assert agg.done and [h["round"] for h in seen] == [1, 2, 3]
    models = [decode_message(e.payload) for e in watcher.poll(0.1) if e.kind == "message" and e.payload]
    after = {m.round - 1: m for m in models if m.round > 1}  # the announcement of r+1 holds round r's model
    separately = BundleEvaluator(BUNDLE, x, y)
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2, 3]
    for h, row in zip(agg.history, rows):
        model = after[h["round"]].tensors
        assert h["eval"]["model_digest"] == model_digest(model) == row["model_digest"]
        assert row["accuracy"] == h["eval"]["accuracy"] == separately.evaluate(model)["accuracy"]
        assert row["clients"] == 2 and row["bytes_up"] == h["bytes_in"] > 0
        # two clients fetched the announcement; each got a status reply on top
        assert row["bytes_down"] > 2 * row["announcement_bytes"] > 0
        assert row["round_s"] >= 0 and row["eval_s"] >= 0 and row["client_train_loss"] == 1.0
    status = decode_message(broker.retained["edgefl/ev/status"])
    assert status.round == 3 and status.metrics["accuracy"] == rows[-1]["accuracy"]
    # the round summary's one place on the wire: announcements carry none of it
    assert status.params["clients"] == agg.history[-1]["clients"] == ["a", "b"]
    assert status.base_digest == agg.history[-1]["base_digest"] and status.metrics["clients"] == 2
    assert status.params["model_digest"] == rows[-1]["model_digest"]
    assert all(m.metrics == {} for m in models)


def test_a_metrics_row_is_flat_and_complete_without_an_evaluator():
    entry = {"round": 4, "clients": ["a", "b"], "num_examples": 20, "bytes_in": 300, "rejected": 1,
             "client_metrics": {"train_loss": 0.5}, "time": 10.0, "elapsed_s": 3.0, "round_s": 1.5,
             "bytes_down": 900, "announcement_bytes": 400}
    row = metrics_row(entry, "f", "sync")
    assert row["accuracy"] is None and row["eval_s"] is None
    assert (row["round"], row["clients"], row["bytes_up"], row["bytes_down"], row["rejected"],
            row["client_train_loss"]) == (4, 2, 300, 900, 1, 0.5)


def test_async_versions_are_scored_as_they_are_made(tmp_path):
    """FedBuff: each new model version (every K = 2 updates) is evaluated — its row's accuracy is
    the separately scored model the next announcement carries."""
    pytest.importorskip("onnxruntime")
    x, y = held_out(seed=4)
    broker = MemoryBroker()
    watcher = MemoryTransport(broker, "watcher")
    watcher.connect()
    watcher.subscribe("edgefl/asy/round", 1)
    agg = AggregatorCore(AggregatorConfig("asy", mode="async", rounds=2, buffer_size=2, min_clients=2,
                                          deadline_s=30), load_model_tensors(BUNDLE))
    threads = [threading.Thread(target=run_agent, args=(AgentCore(AgentConfig("asy", cid)),
                                                        MemoryTransport(broker, cid), HeadNudge(i + 7)),
                                kwargs=dict(timeout=20, poll_s=0.01))
               for i, cid in enumerate(("a", "b"))]
    for t in threads:
        t.start()
    transport = CountingTransport(MemoryTransport(broker, "agg"))
    serve_aggregator(agg, transport, timeout=20, poll_s=0.01,
                     on_round=RoundRecorder(agg, transport, BundleEvaluator(BUNDLE, x, y),
                                            str(tmp_path / "m.jsonl")))
    for t in threads:
        t.join(25)
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    models = {m.round: m for m in (decode_message(e.payload) for e in watcher.poll(0.1)
                                   if e.kind == "message" and e.payload)}
    assert agg.done and [(r["round"], r["mode"]) for r in rows] == [(1, "async"), (2, "async")]
    for row in rows:
        model = models[row["round"] + 1].tensors
        assert row["model_digest"] == model_digest(model)
        assert row["accuracy"] == BundleEvaluator(BUNDLE, x, y).evaluate(model)["accuracy"]
