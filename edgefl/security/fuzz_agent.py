"""Fuzz a real agent process through a real broker: ``python -m edgefl.runtime agent`` (head mode
on a bundle, signed announcements required, state file) behind the MQTT options given, and a
fuzzer client that plays its aggregator: a real ``AggregatorCore`` in this process makes the
genuine signed announcements and answers the agent's updates, and before each genuine round it
sends hundreds of malformed and hostile announcements and status messages
(``edgefl.security.fuzz_announce``), some retained.

The agent must never stop or fail inside (no ``internal`` line, no skipped training), must
answer every traced mutant with a refusal on its agent-status topic (announcements) or a logged
line (statuses), must contribute to every genuine round once, from the genuine model, and must
end holding the aggregator's final model. Its resident memory is sampled all along.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish
from edgefl.runtime.announce import AnnouncementSigner, generate_key_pair
from edgefl.runtime.config import load_model_tensors, make_transport
from edgefl.runtime.loops import wait_connected
from edgefl.runtime.wire import decode_message
from edgefl.security.fuzz_announce import MARKED, AgentFuzzContext, agent_mutants
from edgefl.security.fuzz_live import RssSampler, _mib

CLIENT = "edge-0"
_IGNORED_STATUS = re.compile(r"ignored a status for round (\d+): ([\w-]+)")


@dataclass
class AgentFuzzReport:
    """Counts of one agent fuzz run (see the module docstring for what must hold)."""

    tried: int = 0
    traced: int = 0  # marked mutants answered (refusal or logged line)
    untraced: int = 0  # marked mutants with no answer (must be 0)
    internal: int = 0  # 'internal' lines in the agent's log (must be 0)
    training_failed: int = 0  # rounds whose training failed (must be 0)
    rounds_contributed: list = field(default_factory=list)
    updates_from_genuine_model: bool = False
    final_model_matches: bool = False
    exit_code: int | None = None
    by_kind: dict = field(default_factory=dict)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        doc = {k: getattr(self, k) for k in ("tried", "traced", "untraced", "internal", "training_failed",
                                              "rounds_contributed", "updates_from_genuine_model",
                                              "final_model_matches", "exit_code")}
        doc["by_kind"] = {k: dict(sorted(v.items())) for k, v in sorted(self.by_kind.items())}
        return {**doc, "seconds": round(self.seconds, 3), **self.extra}

    @property
    def ok(self) -> bool:
        return (self.exit_code == 0 and not (self.untraced or self.internal or self.training_failed)
                and self.updates_from_genuine_model and self.final_model_matches)


def _local_data(bundle: str, folder: Path, head: dict) -> str:
    """Random local images in the bundle's input shape, labels over its head's classes."""
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    shape = [48] + [int(s) for s in manifest["inputs"][0]["shape"][1:]]
    classes = min(np.shape(v)[0] for v in head.values())
    rng = np.random.RandomState(0)
    path = folder / "local.npz"
    np.savez(str(path), x=(rng.rand(*shape) * 255).astype(np.uint8), y=rng.randint(0, classes, shape[0]))
    return str(path)


def _reason_code(reason: str) -> str:
    """``"announcement: bad-params: params.x ..."`` -> ``"bad-params"``; free text -> its start."""
    text = reason[len("announcement: "):] if reason.startswith("announcement: ") else reason
    return re.split(r"[:(]", text, 1)[0].strip()[:48]


class _Agent:
    """The agent process of one run (config, state and log in ``folder``)."""

    def __init__(self, folder: Path, mqtt: dict, bundle: str, public_key: str, data: str, python: str,
                 env: dict | None, timeout: float):
        self.folder, self.python, self.env = folder, python, env
        config = {
            "federation": "afuzz", "client_id": CLIENT, "mqtt": mqtt, "bundle": str(Path(bundle).resolve()),
            "backend": "onnxruntime", "data": data, "state_path": str(folder / "agent.state"),
            "timeout_s": timeout, "resend_s": 3600.0, "max_rounds": 0,
            "signing": {"aggregator_public_key": public_key},
        }
        self.config = folder / "agent.json"
        self.config.write_text(json.dumps(config))
        self.proc: subprocess.Popen | None = None
        self.rss: RssSampler | None = None

    def start(self) -> None:
        out, err = open(self.folder / "agent.out", "wb"), open(self.folder / "agent.log", "wb")
        argv = [self.python, "-m", "edgefl.runtime", "agent", "--config", str(self.config)]
        self.proc = subprocess.Popen(argv, stdout=out, stderr=err, env=self.env, cwd=str(self.folder))
        out.close()
        err.close()
        self.rss = RssSampler(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.rss is not None:
            self.rss.stop()

    def log(self) -> str:
        return (self.folder / "agent.log").read_text(errors="replace")

    def result(self) -> dict:
        text = (self.folder / "agent.out").read_text(errors="replace").strip()
        return json.loads(text.splitlines()[-1]) if text else {}


def run_agent_fuzz(
    mqtt: dict,
    bundle: str,
    per_round: int = 300,
    rounds: int = 2,
    seed: int = 0,
    python: str | None = None,
    env: dict | None = None,
    timeout: float = 300.0,
    folder: str | None = None,
) -> AgentFuzzReport:
    """The agent fuzz (see the module docstring) with ``per_round`` mutants before each round.

    Args:
        mqtt: the broker's options (the ``mqtt`` config section).
        bundle: a bundle directory (head mode: the federation's model is its head).
        python, env: the agent's interpreter and environment (e.g. the Python 3.6 edge stack).
        timeout: bounds every wait (a hang fails the run; nothing is timed).
    Returns:
        AgentFuzzReport; ``extra`` holds the agent's RSS and its log counts.
    """
    private, public = generate_key_pair()
    head = load_model_tensors(str(bundle))
    cfg = AggregatorConfig("afuzz", clients=[CLIENT], min_clients=1, rounds=rounds, deadline_s=1e9,
                           codec="int8", train={"epochs": 1, "lr": 0.1, "batch_size": 16})
    core = AggregatorCore(cfg, head)
    core.announce_signer = AnnouncementSigner(private)
    tmp = tempfile.TemporaryDirectory(prefix="edgefl-agent-fuzz-") if folder is None else None
    where = Path(folder or tmp.name)
    where.mkdir(parents=True, exist_ok=True)
    agent = _Agent(where, mqtt, bundle, public, _local_data(bundle, where, head), python or sys.executable,
                   env, timeout)
    report, start = AgentFuzzReport(), time.perf_counter()
    topics = core.topics
    fuzzer = make_transport("afuzz-aggregator", mqtt)
    for topic in (topics.update(CLIENT), topics.agent_status(CLIENT), topics.online(CLIENT)):
        fuzzer.subscribe(topic, 1)
    fuzzer.connect()
    inbox = wait_connected(fuzzer, timeout)
    seen = {"updates": [], "refusals": [], "online": False}

    def pump(until, alive=True) -> bool:
        end = time.monotonic() + timeout
        while not until() and time.monotonic() < end and (not alive or agent.proc.poll() is None):
            for ev in inbox + fuzzer.poll(0.05):
                if ev.kind != "message" or not ev.payload:
                    continue
                if ev.topic == topics.online(CLIENT):
                    seen["online"] = ev.payload == b"online"
                elif ev.topic == topics.update(CLIENT):
                    seen["updates"].append(ev.payload)
                else:
                    seen["refusals"].append(decode_message(ev.payload))
            del inbox[:]
        return until()

    def publish(actions) -> None:
        for a in actions:
            if isinstance(a, Publish):
                fuzzer.publish(a.topic, a.payload, a.qos, a.retain)

    marks: dict[int, str] = {}
    counter = [0]  # marks stay unique across rounds
    genuine_digests, actions, previous = {}, core.start(0.0), None
    try:
        agent.start()
        if pump(lambda: seen["online"]):  # subscribed (its subscriptions precede 'online')
            for rnd in range(1, rounds + 1):
                ann = next(a for a in actions if isinstance(a, Publish) and a.topic == topics.round)
                genuine_digests[rnd] = core.digest
                ctx = AgentFuzzContext(ann.payload, CLIENT, private, previous, counter=counter)
                for kind, m in agent_mutants(ctx, per_round, seed=seed * 1000 + rnd):
                    topic = topics.round if m.topic == "round" else topics.status(CLIENT)
                    fuzzer.publish(topic, m.payload, 1, m.retain)
                    report.tried += 1
                    report.by_kind.setdefault(kind, Counter())["sent"] += 1
                    if kind in MARKED:
                        marks[m.mark] = kind
                publish(actions)  # the genuine announcement, retained, after the mutants
                if not pump(lambda: len(seen["updates"]) >= rnd):
                    break
                actions = core.on_message(topics.update(CLIENT), seen["updates"][rnd - 1], 1.0)
                previous = ann.payload
            publish(actions)  # the last status and the final announcement: the agent stops
            agent.proc.wait(timeout)
            # its last words ('offline', retained) follow everything else it published
            pump(lambda: not seen["online"], alive=False)
        report.exit_code = agent.proc.poll()
    finally:
        fuzzer.close()
        agent.stop()
    _book(report, agent, core, seen, marks, genuine_digests)
    report.seconds = time.perf_counter() - start
    if tmp is not None:
        tmp.cleanup()
    return report


def _book(report, agent, core, seen, marks, genuine_digests) -> None:
    """Trace every marked mutant to its answer; check the updates and the final model."""
    answered = {}
    for msg in seen["refusals"]:
        answered[msg.round] = _reason_code(str(msg.params.get("reason", "")))
    log = agent.log()
    for round_, code in _IGNORED_STATUS.findall(log):
        answered[int(round_)] = "ignored: " + code
    for mark, kind in marks.items():
        code = answered.get(mark)
        report.by_kind[kind][code or "(no answer)"] += 1
        report.traced += code is not None
        report.untraced += code is None
    updates = [decode_message(p) for p in seen["updates"]]
    report.rounds_contributed = [u.round for u in updates]
    report.updates_from_genuine_model = bool(updates) and all(
        u.base_digest == genuine_digests.get(u.round) for u in updates)
    result = agent.result()
    report.final_model_matches = core.done and result.get("model_digest") == core.digest
    report.internal = log.count("internal:")
    report.training_failed = log.count("training failed")
    rss = agent.rss
    report.extra = {
        "agent_result": {k: result.get(k) for k in ("updates_sent", "last_round", "model_round")},
        "refusals_published": len(seen["refusals"]),
        "logged_bad_messages": log.count("ignored a bad message"),
        "logged_refusals": log.count("refused the announcement"),
        "rss_mib": {"peak": _mib(rss.peak), "first": _mib(rss.samples[0] if rss.samples else 0)},
    }
    if report.exit_code != 0:
        report.extra["log_tail"] = log[-2000:]
