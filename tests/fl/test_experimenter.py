"""A published FL setting as an experimenter runs it: a partition file, a user's CNN, Mosquitto, central
evaluation — and the accuracy the aggregator records is the accuracy of the global models it announced."""

import json
import subprocess
import threading
import time

import numpy as np
import pytest

from edgefl.data import load_mnist

CNN = '''
from torch import nn


def build(in_channels=1, num_classes=10):
    """Not a zoo model: conv 1->6, max-pool 4, linear 6*7*7 -> classes."""
    return nn.Sequential(nn.Conv2d(in_channels, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
                         nn.Linear(6 * 7 * 7, num_classes))
'''
CLIENTS, ROUNDS = 10, 2


def edgefl(tool):
    return tool("edgefl", "the edgefl console script (pip install -e .)")


def run_json(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


def announcements(broker, federation, stop):
    """Every round announcement a watcher sees (the global model of each round, in order)."""
    from edgefl.runtime.config import make_transport
    from edgefl.runtime.loops import wait_connected
    from edgefl.runtime.transport.paho_mqtt import MqttOptions
    from edgefl.runtime.wire import decode_message

    t = make_transport("watcher", MqttOptions(host=broker.host, port=broker.port, username="watcher"))
    t.connect()
    t.subscribe(f"edgefl/{federation}/round", 1)
    seen = [e for e in wait_connected(t) if e.kind == "message" and e.payload]
    while not stop():
        seen += [e for e in t.poll(0.2) if e.kind == "message" and e.payload]
    seen += [e for e in t.poll(1.0) if e.kind == "message" and e.payload]
    t.close()
    return {m.round: m for m in map(decode_message, (e.payload for e in seen))}


@pytest.mark.slow
def test_a_partition_file_a_users_cnn_and_central_evaluation_through_mosquitto(mosquitto, tool, tmp_path):
    exe = edgefl(tool)
    d = load_mnist()
    x = (d.x[:, 0] * 255).round().astype(np.uint8)
    np.savez(tmp_path / "train.npz", x=x[:1200], y=d.y[:1200])
    np.savez(tmp_path / "test.npz", x=x[-400:], y=d.y[-400:])
    (tmp_path / "user_cnn.py").write_text(CNN)
    parts = run_json([exe, "data", "partition", "--data", tmp_path / "train.npz", "--no-split", "--dirichlet",
                      0.5, "--clients", CLIENTS, "--seed", 0, "--out", tmp_path / "parts.json", "--json"])
    ids = list(parts["clients"])
    run_json([exe, "train", "--model", f"{tmp_path / 'user_cnn.py'}:build", "--data", tmp_path / "train.npz",
              "--epochs", 1, "--out", tmp_path / "ckpt", "--json"])
    common = ["--federation", "exp", "--broker", f"mqtt://127.0.0.1:{mosquitto.port}"]

    done = threading.Event()
    watched = {}
    watcher = threading.Thread(target=lambda: watched.update(announcements(mosquitto, "exp", done.is_set)))
    watcher.start()
    time.sleep(1.0)
    agg = subprocess.Popen([str(c) for c in [
        exe, "aggregate", "--model", tmp_path / "ckpt", "--rounds", ROUNDS, "--min-clients", CLIENTS,
        "--clients-per-round", CLIENTS, "--client-ids", ",".join(ids), "--codec", "int8",
        "--train-option", "epochs=1", "--train-option", "lr=0.05", "--train-option", "momentum=0.9",
        "--eval-data", tmp_path / "test.npz", "--metrics", tmp_path / "rounds.jsonl", "--timeout", 500,
        "--json", *common]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    agents = [subprocess.Popen([str(c) for c in [
        exe, "agent", "--client-id", cid, "--checkpoint", tmp_path / "ckpt", "--data", tmp_path / "train.npz",
        "--no-split", "--partition-file", tmp_path / "parts.json", "--timeout", 500, "--json", *common]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for cid in ids]
    try:
        outs = [p.communicate(timeout=560) for p in agents + [agg]]
    finally:
        done.set()
        watcher.join(30)
        for p in agents + [agg]:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(agents + [agg], outs):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(out) for out, _ in outs]
    # each agent trained on exactly its share of the partition file, every round
    assert [r["examples"] for r in results[:-1]] == [parts["clients"][c]["examples"] for c in ids]
    assert [r["updates_sent"] for r in results[:-1]] == [ROUNDS] * CLIENTS
    history = results[-1]["history"]
    rows = [json.loads(line) for line in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    assert [h["round"] for h in history] == [r["round"] for r in rows] == list(range(1, ROUNDS + 1))

    # the same global models, scored separately: the announcement of round r+1 carries round r's model
    from edgefl.checkpoint import load_checkpoint
    from edgefl.data import load_npz
    from edgefl.fl.experiment import evaluate_tensors
    from edgefl.runtime.wire import model_digest

    ckpt = load_checkpoint(tmp_path / "ckpt")
    test = load_npz(tmp_path / "test.npz")
    for h, row in zip(history, rows):
        model = watched[h["round"] + 1].tensors
        assert h["eval"]["model_digest"] == row["model_digest"] == model_digest(model)
        separately = evaluate_tensors(ckpt.model, model, test, ckpt.config["preprocessing"])
        assert h["eval"]["accuracy"] == row["accuracy"] == separately["accuracy"]
        assert h["eval"]["loss"] == pytest.approx(separately["loss"], rel=1e-6)
        assert row["clients"] == CLIENTS and row["bytes_up"] > 0 and row["eval_examples"] == 400
    # each round recorded its own model, and a score of it, not a constant
    assert len({r["model_digest"] for r in rows}) == ROUNDS and all(0 < r["loss"] < 1e3 for r in rows)
