"""End-to-end rounds through a real Mosquitto broker (paho transport, chunking, Python 3.6 agent)."""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from edgefl.runtime.agent import AgentConfig, AgentCore
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore
from edgefl.runtime.config import load_model_tensors, make_transport, read_safetensors
from edgefl.runtime.loops import run_agent, serve_aggregator, wait_connected
from edgefl.runtime.transport.paho_mqtt import MqttOptions
from edgefl.runtime.wire import decode_message, model_digest

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLE = os.path.join(HERE, "data", "tiny_bundle")
RUNTIME = os.path.realpath(os.path.join(HERE, "..", "..", "runtime"))


def mqtt_of(broker):
    return MqttOptions(host=broker.host, port=broker.port, username="edgefl")


def edge_pythonpath(tmp_path):
    """A folder where ``edgefl`` holds only the runtime, as on the device."""
    if os.environ.get("EDGEFL_EDGE36_PATH"):
        return os.environ["EDGEFL_EDGE36_PATH"]
    pkg = tmp_path / "edge" / "edgefl"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(u"")
    os.symlink(RUNTIME, str(pkg / "runtime"))
    return str(tmp_path / "edge")


def test_sync_rounds_through_mosquitto_with_chunking(mosquitto, small_model, shift_trainer):
    cfg = AggregatorConfig("e2e", rounds=2, min_clients=3, clients_per_round=3, deadline_s=60)
    agg = AggregatorCore(cfg, small_model)
    shifts = {"a": (1.0, 10), "b": (2.0, 30), "c": (-1.0, 60)}
    threads = []
    for cid, (s, n) in shifts.items():
        core = AgentCore(AgentConfig("e2e", cid))
        t = threading.Thread(target=run_agent, args=(
            core, make_transport(cid, mqtt_of(mosquitto), max_payload=300), shift_trainer(s, n)),
            kwargs=dict(timeout=60))
        t.start()
        threads.append(t)
    transport = make_transport("agg", mqtt_of(mosquitto), max_payload=300)  # forces chunking
    try:
        serve_aggregator(agg, transport, timeout=60)
    finally:
        transport.close()
    for t in threads:
        t.join(60)
    assert agg.done, agg.history
    shift = (1.0 * 10 + 2.0 * 30 - 1.0 * 60) / 100.0
    for name, v in small_model.items():
        np.testing.assert_allclose(agg.global_model[name], v + 2 * shift, atol=1e-5)
    # a late subscriber finds the final model, retained and chunked
    late = make_transport("late", mqtt_of(mosquitto), max_payload=300)
    late.connect()
    late.subscribe("edgefl/e2e/round")
    got = []
    for _ in range(100):
        got += [e for e in late.poll(0.1) if e.kind == "message" and e.payload]
        if got:
            break
    late.close()
    final = decode_message(got[0].payload)
    assert final.params["final"] and final.round == 3


def _write(path, obj):
    with open(str(path), "w") as f:
        json.dump(obj, f)
    return str(path)


def test_python36_agent_takes_part_via_python_m_edgefl_runtime(mosquitto, python36, tmp_path):
    """Aggregator: `python -m edgefl.runtime aggregate` on this interpreter; agents: one under
    Python 3.6 (`python -m edgefl.runtime agent`, head mode on onnxruntime features) and one
    in-process. Announcements are FedFQ-coded deltas: the Python 3.6 agent (numpy 1.19) starts
    from its bundle's head and rebuilds every model bit for bit from deltas coded here; the
    in-process agent starts with no model and loads the snapshot."""
    pytest.importorskip("onnxruntime")
    env = dict(os.environ, PYTHONPATH=edge_pythonpath(tmp_path))
    mqtt = {"host": mosquitto.host, "port": mosquitto.port, "username": "edgefl"}
    rng = np.random.RandomState(0)
    x = (rng.rand(48, 1, 4, 4) * 255).astype(np.uint8)
    np.savez(str(tmp_path / "local.npz"), x=x, y=rng.randint(0, 3, 48))
    held_x, held_y = (rng.rand(30, 1, 4, 4) * 255).astype(np.uint8), rng.randint(0, 3, 30)
    np.savez(str(tmp_path / "held.npz"), x=held_x, y=held_y)
    agg_cfg = _write(tmp_path / "agg.json", {
        "aggregator": {"federation": "py36", "rounds": 2, "min_clients": 2,
                       "clients_per_round": 2, "deadline_s": 90, "codec": "fedfq",
                       "codec_options": {"rate": 0.1}, "downlink_codec": "fedfq",
                       "downlink_options": {"rate": 0.1},
                       "train": {"epochs": 2, "lr": 0.1, "batch_size": 16}},
        "mqtt": mqtt, "model": BUNDLE, "state_path": str(tmp_path / "agg.state"),
        "output": str(tmp_path / "final.safetensors"), "timeout_s": 120, "max_payload": 512,
        "evaluation": {"data": str(tmp_path / "held.npz"), "bundle": BUNDLE},
        "metrics_path": str(tmp_path / "rounds.jsonl")})
    agent_cfg = _write(tmp_path / "agent.json", {
        "federation": "py36", "client_id": "tx2-py36", "mqtt": mqtt, "bundle": BUNDLE,
        "backend": "onnxruntime", "data": str(tmp_path / "local.npz"), "max_rounds": 0,
        "timeout_s": 120, "state_path": str(tmp_path / "agent.state"), "max_payload": 512})
    agg = subprocess.Popen([sys.executable, "-m", "edgefl.runtime", "aggregate", "--config",
                            agg_cfg], env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    agent = subprocess.Popen([python36, "-m", "edgefl.runtime", "agent", "--config", agent_cfg],
                             env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    from edgefl.runtime.agent import TrainResult, Trainer

    class Nudge(Trainer):
        def train(self, g, options):
            return TrainResult({k: v + np.float32(0.01) for k, v in g.items()}, 5, {})

    core = AgentCore(AgentConfig("py36", "host-agent"))
    transport = make_transport("host-agent", MqttOptions(**mqtt), max_payload=512)
    try:
        run_agent(core, transport, Nudge(), timeout=120)  # until the final announcement
    finally:
        transport.close()
    try:
        a_out, a_err = agent.communicate(timeout=150)
        g_out, g_err = agg.communicate(timeout=150)
    finally:
        for p in (agent, agg):
            if p.poll() is None:
                p.kill()
    assert agent.returncode == 0, a_err.decode()[-3000:]
    assert agg.returncode == 0, g_err.decode()[-3000:]
    result = json.loads(a_out.decode())
    assert result["updates_sent"] == 2 and result["last_round"] == 2
    assert result["model_round"] == 3 and result["announcement_bytes"]["snapshot"] == 0
    summary = json.loads(g_out.decode())
    assert summary["done"] and [sorted(h["clients"]) for h in summary["history"]] == \
        [["host-agent", "tx2-py36"]] * 2
    final = read_safetensors(str(tmp_path / "final.safetensors"))
    assert model_digest(final) == result["model_digest"] == core.model_digest
    assert core.received["snapshot"] > 0
    start = load_model_tensors(BUNDLE)
    assert set(final) == set(start) and any(
        not np.array_equal(final[n], start[n]) for n in start)
    # central evaluation by the aggregator process (this interpreter: Python 3.6 in the edge suite)
    from edgefl.runtime.evaluation import BundleEvaluator

    rows = [json.loads(line) for line in open(str(tmp_path / "rounds.jsonl"))]
    assert [r["round"] for r in rows] == [1, 2] and rows[-1]["model_digest"] == model_digest(final)
    assert rows[-1]["accuracy"] == summary["history"][-1]["eval"]["accuracy"] == \
        BundleEvaluator(BUNDLE, held_x, held_y).evaluate(final)["accuracy"]


def wait_for(predicate, what, timeout=60.0):
    """Poll until ``predicate()`` is true; the timeout only bounds a hang."""
    import time

    end = time.time() + timeout
    while not predicate():
        assert time.time() < end, "timed out waiting for " + what
        time.sleep(0.02)


def test_a_flood_waits_at_the_broker_not_in_the_receivers_memory(mosquitto):
    """With ``max_queued_bytes``, what the receiver has not polled stays within the bound while
    a sender floods it; the broker holds the rest and every message still arrives, in order."""
    import time

    from edgefl.runtime.transport.paho_mqtt import PahoTransport

    receiver = PahoTransport("flood-rx", mqtt_of(mosquitto), max_queued_bytes=1 << 20)
    receiver.subscribe("flood/t", 1)
    receiver.subscribe("flood/probe", 1)  # subscribed after flood/t, on the same connection
    receiver.connect()
    sender = make_transport("flood-tx", mqtt_of(mosquitto), max_payload=1 << 20)
    sender.connect()
    wait_connected(sender, 60)
    # the receiver's subscriptions are active once a probe comes back (no fixed sleep)
    wait_for(lambda: sender.publish("flood/probe", b"p", 0) or any(
        e.topic == "flood/probe" for e in receiver.poll(0.1) if e.kind == "message"), "the probe")
    blobs = [bytes([i]) * (256 * 1024) for i in range(40)]  # 10 MiB
    for blob in blobs:
        sender.publish("flood/t", blob, 1)
    assert sender.flush(60)  # all of it reached the broker
    # the receiver's network thread takes what it may: up to the bound, then it waits for room
    wait_for(lambda: receiver._queued + 256 * 1024 > 1 << 20, "the receiver's queue to fill")
    held = receiver._queued
    got = []
    end = time.time() + 60
    while len(got) < len(blobs) and time.time() < end:
        got += [e.payload for e in receiver.poll(0.2) if e.kind == "message" and e.topic == "flood/t"]
    sender.close()
    receiver.close()
    assert held <= (1 << 20) + 256 * 1024
    assert got == blobs
