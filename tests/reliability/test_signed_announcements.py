"""Signed round announcements through a real Mosquitto, with the device entry points only.

`edgefl federation init` makes the aggregator's Ed25519 key pair (the private key only in the
aggregator's folder, the public key in every agent config). Three `python -m edgefl.runtime
agent` processes — one on the Python 3.6 edge stack (pure-Python verifier), two on this
interpreter — face an attacker who holds broker credentials (this broker has no ACL) but not
the aggregator's key. It publishes a poisoned announcement unsigned, then one signed with its
own key, then replays the genuine round-1 announcement while round 2 runs. Every agent refuses
all three with a reason, in its log and on its status topic, and the federation goes on with
the genuine announcements: both rounds close with all three agents' updates."""

import json
import os
import shutil
import subprocess
import sys
from collections import OrderedDict, defaultdict
from pathlib import Path

import numpy as np
import pytest

from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore
from edgefl.runtime.announce import AnnouncementSigner, AnnouncementVerifier, generate_key_pair
from edgefl.runtime.config import load_model_tensors
from edgefl.runtime.wire import decode_message
from edgefl.security import init_federation

TINY_BUNDLE = Path(__file__).resolve().parents[1] / "runtime" / "data" / "tiny_bundle"
ROUND_TOPIC, STATUS_TOPICS = "edgefl/sig/round", "edgefl/sig/agent-status/+"
REFUSALS = [
    "announcement: announcement is not signed",
    "announcement: bad signature (not made with the aggregator's key)",
    "announcement: round 1 is older than round 2, already loaded (a replay?)",
]


def forged(model, private_key=None):
    """A round-1 announcement of ``model``, unsigned or signed with ``private_key``."""
    core = AggregatorCore(AggregatorConfig("sig", min_clients=1), model)
    if private_key:
        core.announce_signer = AnnouncementSigner(private_key)
    core.round = 1
    return core._announce().payload


class Watch:
    """What the broker carried on the round and agent-status topics, as it arrives."""

    def __init__(self, recorder):
        self.recorder, self.rounds, self.reasons = recorder, [], defaultdict(list)

    def poll(self):
        for topic, payload in self.recorder.drain(0.05):
            msg = decode_message(payload)
            if topic == ROUND_TOPIC:
                self.rounds.append((msg, payload))
            else:
                self.reasons[msg.client_id].append(msg.params["reason"])
        return self

    def refused_by_all(self, clients, reason):
        return all(reason in self.poll().reasons[c] for c in clients)


@pytest.mark.slow
def test_forged_and_replayed_announcements_are_refused_by_every_agent(
    tmp_path, broker, recorders, python36, edge36_path, wait
):
    fed = init_federation("sig", 4, tmp_path / "fed")  # client-003 never comes: rounds close at the deadline
    agents, procs = fed.clients[:3], []
    bundle = shutil.copytree(TINY_BUNDLE, tmp_path / "bundle")
    mqtt = {"host": "127.0.0.1", "port": broker.port, "keepalive": 5}
    watch = Watch(recorders(broker.port, "watcher"))
    watch.recorder.connect()
    watch.recorder.subscribe(STATUS_TOPICS)
    watch.recorder.subscribe(ROUND_TOPIC)
    attacker = recorders(broker.port, "attacker")
    attacker.connect()
    poisoned = OrderedDict((n, v * 100) for n, v in load_model_tensors(str(bundle)).items())

    def start(cmd, config, **env):
        cfg = dict(json.loads(config.read_text()), mqtt=mqtt, timeout_s=90)
        path = tmp_path / (config.parent.name + ".json")
        path.write_text(json.dumps(cfg))
        log = open(tmp_path / (config.parent.name + ".log"), "wb")
        procs.append(subprocess.Popen(cmd + ["--config", str(path)], cwd=tmp_path, env=env or None,
                                      stdout=subprocess.PIPE, stderr=log))

    try:
        attacker.publish(ROUND_TOPIC, forged(poisoned), retain=True)  # waiting for every agent
        rng = np.random.RandomState(0)
        for cid, python in zip(agents, [python36, sys.executable, sys.executable]):
            np.savez(tmp_path / f"{cid}.npz", x=rng.randint(0, 256, (32, 1, 4, 4)).astype(np.uint8),
                     y=rng.randint(0, 3, 32))
            extra = {"bundle": str(bundle), "data": str(tmp_path / f"{cid}.npz"), "backend": "onnxruntime",
                     "state_path": str(tmp_path / f"{cid}.state")}
            cfg = fed.agent_configs[cid]
            cfg.write_text(json.dumps(dict(json.loads(cfg.read_text()), **extra)))
            env = dict(os.environ, PYTHONPATH=edge36_path) if python == python36 else {}
            start([python, "-m", "edgefl.runtime", "agent"], cfg, **env)
        wait(lambda: watch.refused_by_all(agents, REFUSALS[0]), 60, "every agent refusing the unsigned one")
        attacker.publish(ROUND_TOPIC, forged(poisoned, generate_key_pair()[0]), retain=True)
        wait(lambda: watch.refused_by_all(agents, REFUSALS[1]), 30, "every agent refusing the wrong key")

        agg = json.loads(fed.aggregator_config.read_text())
        agg["aggregator"].update(rounds=2, min_clients=3, deadline_s=4.0)
        fed.aggregator_config.write_text(json.dumps(dict(agg, model=str(bundle))))
        start([sys.executable, "-m", "edgefl.runtime", "aggregate"], fed.aggregator_config)
        verifier = AnnouncementVerifier(fed.public_key)

        def genuine():
            return {m.round: p for m, p in watch.poll().rounds if verifier.problem(m) is None}

        wait(lambda: 2 in genuine(), 60, "the genuine round-2 announcement")
        attacker.publish(ROUND_TOPIC, genuine()[1])  # replay round 1 while round 2 runs
        wait(lambda: watch.refused_by_all(agents, REFUSALS[2]), 30, "every agent refusing the replay")
        outs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in agents + ["aggregator"]}
    for p, name in zip(procs, agents + ["aggregator"]):
        assert p.returncode == 0, logs[name][-3000:]
    result = json.loads(outs[-1].decode().strip().splitlines()[-1])
    assert result["done"] and [h["clients"] for h in result["history"]] == [agents, agents]
    assert "rejected update" not in logs["aggregator"]
    for cid, out in zip(agents, outs):
        assert json.loads(out.decode().strip().splitlines()[-1])["statuses"] == [[1, True, ""], [2, True, ""]]
        # each refused, nothing else; a retained one redelivered after a reconnect (keepalive 5 s on a
        # loaded machine) is refused again, which is right, so repeats of the same reason are folded
        assert list(OrderedDict.fromkeys(watch.poll().reasons[cid])) == REFUSALS, cid
        for reason in REFUSALS:
            assert "refused the announcement: " + reason[len("announcement: "):] in logs[cid]
    assert sorted(genuine()) == [1, 2, 3] and decode_message(genuine()[3]).params["final"]
