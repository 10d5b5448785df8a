"""Federation pieces for the reliability tests: a deterministic trainer, a reference run of the
same round state machines without any transport (the "uninterrupted run"), and, run as a
script, one agent process::

    python flkit.py agent CONFIG.json

Loaded by the tests through the ``flkit`` fixture (conftest.py), never imported by name.
"""

import json
import os
import sys
import time
import zlib
from collections import OrderedDict

import numpy as np

from edgefl.runtime.agent import AgentConfig, AgentCore, Trainer, TrainResult
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish
from edgefl.runtime.wire import decode_message

SHAPES = OrderedDict([("fc.bias", (4,)), ("fc.weight", (4, 8))])


def init_model(seed=0):
    rng = np.random.RandomState(seed)
    return OrderedDict((n, rng.randn(*s).astype(np.float32)) for n, s in SHAPES.items())


def client_index(client_id):
    return zlib.crc32(client_id.encode("utf-8")) % 1000


class TargetTrainer(Trainer):
    """Deterministic local training: ``steps`` gradient steps on 0.5*||w - target_c||^2 where
    the target is fixed per client. Optional delay per round (to be caught mid-training) and a
    marker file written when training starts."""

    def __init__(self, client_id, delay_s=0.0, delays=None, marker_dir=None, steps=3, lr=0.3):
        rng = np.random.RandomState(client_index(client_id))
        self.client_id = client_id
        self.target = OrderedDict((n, rng.randn(*s).astype(np.float32)) for n, s in SHAPES.items())
        self.num_examples = 10 + client_index(client_id) % 50
        self.delay_s, self.delays = delay_s, dict(delays or {})
        self.marker_dir, self.steps, self.lr = marker_dir, steps, np.float32(lr)
        self.rounds = 0

    def train(self, global_model, options):
        self.rounds += 1
        if self.marker_dir:
            with open(os.path.join(self.marker_dir, "{}.training".format(self.client_id)), "a") as f:
                f.write("{}\n".format(self.rounds))
        time.sleep(float(self.delays.get(str(self.rounds), self.delay_s)))
        w = OrderedDict((n, np.array(v, np.float32)) for n, v in global_model.items())
        for _ in range(self.steps):
            for n in w:
                w[n] = (w[n] - self.lr * (w[n] - self.target[n])).astype(np.float32)
        loss = sum(float(np.sum((w[n] - self.target[n]) ** 2)) for n in w)
        return TrainResult(w, self.num_examples, {"loss": loss})


def announcement(actions):
    """The round announcement among a core's actions."""
    for a in actions:
        if isinstance(a, Publish) and a.topic.endswith("/round"):
            return a
    return None


def reference_run(config, model, participation, trainers=None):
    """The uninterrupted run: the same aggregator and agent state machines, messages handed
    over directly. ``participation[r]`` lists the clients whose update round r+1 gets; a round
    with fewer clients than the sample closes at its deadline. ``trainers`` maps client ids to
    their Trainer (default: each client's TargetTrainer).

    Returns:
        the aggregator core after the last round (``global_model``, ``history``).
    """
    core = AggregatorCore(config, model)
    agents = {}
    now = 0.0
    ann = announcement(core.start(now))
    for clients in participation:
        actions = []
        for cid in clients:
            trainer = (trainers or {}).get(cid) or TargetTrainer(cid)
            agent = agents.setdefault(cid, (AgentCore(AgentConfig(config.federation, cid)), trainer))
            job = agent[0].on_message(ann.topic, ann.payload)
            assert job is not None, "{} got no job in round {}".format(cid, core.round)
            topic, payload = agent[0].on_trained(job, agent[1].train(job.global_model, job.options))
            actions = core.on_message(topic, payload, now)
        if announcement(actions) is None:  # closes at the deadline with the quorum it has
            now += config.deadline_s + 1.0
            actions = core.tick(now)
        ann = announcement(actions)
        assert ann is not None, "round did not close"
    return core


def models_equal(a, b):
    return sorted(a) == sorted(b) and all(
        np.asarray(a[n]).dtype == np.asarray(b[n]).dtype and np.array_equal(a[n], b[n]) for n in a
    )


def status_of(payload):
    msg = decode_message(payload)
    return msg.round, bool(msg.params.get("accepted")), str(msg.params.get("reason", ""))


class ManualAgent(object):
    """An in-process agent the test drives step by step over a real broker (the runtime's
    AgentCore and transport): connect, wait for a round's job, train, publish, drop out of
    contact, come back. Every payload it publishes is recorded in ``sent``."""

    def __init__(self, client_id, mqtt, federation="rel", sign_key=None):
        self.client_id, self.mqtt, self.sign_key = client_id, mqtt, sign_key
        self.core = AgentCore(AgentConfig(federation, client_id))
        self.trainer = TargetTrainer(client_id)
        self.transport, self.pending, self.sent = None, [], []
        self.jobs = {}  # round -> TrainJob, as announcements arrive

    def connect(self):
        from edgefl.runtime.config import make_transport
        from edgefl.runtime.loops import wait_connected

        self.transport = make_transport(self.client_id, self.mqtt)
        if self.sign_key is not None:
            from edgefl.runtime.signing import SigningTransport

            self.transport = SigningTransport(self.transport, self.sign_key)
        for topic in self.core.subscriptions():
            self.transport.subscribe(topic, 1)
        self.transport.connect()
        self.pending = wait_connected(self.transport, 10)
        return self

    def _feed(self, timeout):
        events, self.pending = self.pending + self.transport.poll(timeout), []
        for ev in events:
            if ev.kind == "message":
                job = self.core.on_message(ev.topic, ev.payload)
                if job is not None:
                    self.jobs[job.round] = job

    def job(self, round_, timeout=120.0):
        """Wait for the announcement of ``round_`` and return its TrainJob."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if round_ in self.jobs:
                return self.jobs[round_]
            self._feed(0.05)
        raise AssertionError(
            "{}: no job for round {} (at {})".format(self.client_id, round_, self.core.last_round)
        )

    def train(self, job):
        """(topic, payload) of this agent's update for ``job``."""
        return self.core.on_trained(job, self.trainer.train(job.global_model, job.options))

    def publish(self, update):
        topic, payload = update
        self.transport.publish(topic, payload, 1, False)
        assert self.transport.flush(60), "publish not acknowledged"
        self.sent.append(update)

    def status(self, n, timeout=120.0):
        """Wait until ``n`` statuses arrived; returns the n-th (round, accepted, reason)."""
        end = time.monotonic() + timeout
        while len(self.core.statuses) < n and time.monotonic() < end:
            self._feed(0.05)
        assert len(self.core.statuses) >= n, "{}: no status #{}".format(self.client_id, n)
        return self.core.statuses[n - 1]

    def disconnect(self):
        self.transport.close()
        self.transport = None


class AggregatorThread(object):
    """The runtime's serve loop around an AggregatorCore, in a thread, over a real broker."""

    def __init__(self, config, model, mqtt, keyring=None):
        import threading

        from edgefl.runtime.config import make_transport
        from edgefl.runtime.loops import serve_aggregator

        self.core = AggregatorCore(config, model)
        self.core.keyring = keyring
        self.lines = []
        self._stop = False
        self.transport = make_transport("aggregator", mqtt)
        self.thread = threading.Thread(
            target=serve_aggregator,
            args=(self.core, self.transport),
            kwargs=dict(
                stop=lambda: self._stop, timeout=300, poll_s=0.02, log=lambda *line: self.lines.append(line)
            ),
            daemon=True,
        )
        self.thread.start()

    def wait_round(self, round_, timeout=120.0):
        end = time.monotonic() + timeout
        while self.core.round < round_ and time.monotonic() < end:
            time.sleep(0.02)
        assert self.core.round >= round_, "aggregator stuck at round {}".format(self.core.round)

    def join(self, timeout=300.0):
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.stop()
            raise AssertionError("aggregator did not finish")
        self.transport.close()

    def stop(self):
        self._stop = True
        self.thread.join(10)


def agent_main(cfg):
    """One agent process (the deterministic trainer, the runtime's agent loop and transport)."""
    from edgefl.runtime.config import make_transport
    from edgefl.runtime.loops import run_agent

    core = AgentCore(AgentConfig(cfg["federation"], cfg["client_id"]))
    trainer = TargetTrainer(
        cfg["client_id"], cfg.get("delay_s", 0.0), cfg.get("delays"), cfg.get("marker_dir")
    )
    transport = make_transport(cfg["client_id"], cfg["mqtt"])

    def log(level, text):
        sys.stderr.write("[{} {}] {}\n".format(cfg["client_id"], level, text))

    try:
        sent = run_agent(
            core,
            transport,
            trainer,
            state_path=cfg.get("state_path"),
            timeout=cfg.get("timeout_s", 60),
            log=log,
            poll_s=0.05,
        )
    finally:
        transport.close()
    print(json.dumps({"client_id": cfg["client_id"], "sent": sent, "statuses": core.statuses}))
    return 0


def aggregator_config(**kw):
    return AggregatorConfig(**kw)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "agent":
        sys.exit("usage: python flkit.py agent CONFIG.json")
    with open(sys.argv[2]) as fh:
        sys.exit(agent_main(json.load(fh)))
