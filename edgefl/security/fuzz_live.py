"""Fuzz a real aggregator process through a real broker: ``python -m edgefl.runtime aggregate``
(signatures required, state file, 64 KiB update limit) behind the MQTT options given, and a
fuzzer client that sends genuine and hostile updates (``edgefl.security.fuzz``, retained poison
and chunk floods included) and reads every status.

Between rounds 1 and 2 the aggregator is killed with SIGKILL and started again: it must resume
round 2, ignore every retained poison left on the update topics (each would otherwise come back
on every start) and go on. The aggregator's resident memory is sampled all along
(``/proc/PID/status``), so the report says how much it grew under thousands of mutants and
megabytes of chunk floods.
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from edgefl.runtime import signing
from edgefl.runtime.agent import AgentConfig, AgentCore
from edgefl.runtime.aggregator import AggregatorCore, Publish
from edgefl.runtime.config import make_transport
from edgefl.runtime.loops import wait_connected
from edgefl.runtime.transport.chunking import SEP
from edgefl.runtime.wire import decode_message, decode_tensors, encode_tensors
from edgefl.security.fuzz import NO_STATUS, FuzzContext, mutants
from edgefl.security.fuzz_run import (
    SHAPES,
    FuzzReport,
    _count_status,
    fuzz_config,
    genuine_updates,
    init_model,
)


class RssSampler:
    """Samples a process's resident set (VmRSS) and peak (VmHWM) every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.05):
        self.pid, self.every, self.samples, self.peak = pid, every, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self) -> dict:
        out = {}
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) * 1024
        return out

    def _run(self):
        while not self._stop.is_set():
            try:
                now = self._read()
            except (OSError, ValueError, IndexError):
                return  # the process is gone
            self.samples.append(now.get("VmRSS", 0))
            self.peak = max(self.peak, now.get("VmHWM", 0), now.get("VmRSS", 0))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _mib(n: float) -> float:
    return round(n / 2**20, 2)


class _Aggregator:
    """The aggregator process of one live run (config, keyring, model and logs in ``folder``)."""

    def __init__(self, folder: Path, cfg, keys: dict, mqtt: dict, timeout: float):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.output, self.state = folder / "final.safetensors", folder / "state.safetensors"
        (folder / "init.safetensors").write_bytes(encode_tensors(init_model()))
        keyring = folder / "keyring.json"
        keyring.write_text(json.dumps({"keys": {c: k.hex() for c, k in keys.items()}}))
        config = {
            "aggregator": {k: getattr(cfg, k) for k in ("federation", "clients", "min_clients", "rounds",
                                                        "deadline_s", "max_norm", "max_update_bytes")},
            "mqtt": mqtt, "model": str(folder / "init.safetensors"), "state_path": str(self.state),
            "output": str(self.output), "client_id": "aggregator", "timeout_s": timeout,
            "signing": {"keyring": str(keyring)},
        }
        self.config = folder / "aggregator.json"
        self.config.write_text(json.dumps(config))
        self.runs: list[tuple[subprocess.Popen, RssSampler]] = []

    @property
    def proc(self) -> subprocess.Popen:
        return self.runs[-1][0]

    def start(self) -> None:
        log = open(self.folder / f"aggregator-{len(self.runs)}.log", "wb")
        argv = [sys.executable, "-m", "edgefl.runtime", "aggregate", "--config", str(self.config)]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.runs.append((proc, RssSampler(proc.pid)))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        for proc, rss in self.runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            rss.stop()

    def log(self) -> str:
        return "".join((self.folder / f"aggregator-{i}.log").read_text(errors="replace")
                       for i in range(len(self.runs)))


def run_live_fuzz(
    mqtt: dict,
    per_round: int = 1500,
    rounds: int = 2,
    clients: int = 4,
    seed: int = 0,
    max_bytes: int = 64 * 1024,
    timeout: float = 300.0,
    restart: bool = True,
    flood_mib: float = 0.0,
    folder: str | None = None,
) -> FuzzReport:
    """The live fuzz (see the module docstring); ``flood_mib`` MiB of 64 KiB chunks under one
    message id (declaring one update's worth) go to the aggregator in round 1, on top of the
    chunk-flood mutants.

    Returns:
        FuzzReport; ``extra`` holds the aggregator's RSS (start, peak and growth per process),
        the bytes of chunk floods sent, log counts (rejections, ignored retained messages,
        dropped chunk streams), ``status_to_sender`` and whether the process exited cleanly.
    """
    ids = ["c%d" % i for i in range(clients)]
    keys = {cid: signing.key_from_hex(signing.generate_key()) for cid in ids}
    cfg = fuzz_config(ids, rounds, max_bytes)
    clean = AggregatorCore(cfg, init_model())
    clean.start(0.0)
    tmp = tempfile.TemporaryDirectory(prefix="edgefl-live-fuzz-") if folder is None else None
    agg = _Aggregator(Path(folder or tmp.name), cfg, keys, mqtt, timeout)
    report, start = FuzzReport(), time.perf_counter()
    fuzzer = make_transport("fuzzer", mqtt)
    topics = clean.topics
    fuzzer.subscribe(topics.round, 1)
    fuzzer.subscribe(topics.root + "/status/+", 1)
    fuzzer.connect()
    events = wait_connected(fuzzer, 10)
    statuses, announcements, baseline = [], {}, {}
    flood_bytes = 0

    def pump(until, limit=timeout):
        end = time.monotonic() + limit
        while not until() and agg.proc.poll() is None and time.monotonic() < end:
            for ev in events + fuzzer.poll(0.05):
                if ev.kind == "message" and ev.payload:
                    msg = decode_message(ev.payload)
                    if msg.kind == "round":
                        key = (msg.round, msg.params.get("epoch"))
                        announcements[key] = Publish(ev.topic, ev.payload, 1, True)
                    else:
                        statuses.append((ev.topic.rsplit("/", 1)[1], msg))
            del events[:]
        return until()

    def announced(round_, epoch=None):
        return next((a for (r, e), a in announcements.items() if r == round_ and epoch in (None, e)), None)

    agents = {cid: AgentCore(AgentConfig(cfg.federation, cid)) for cid in ids}
    previous, owed, genuine_sent = {}, 0, 0  # owed: mutants that must be answered with a status
    try:
        agg.start()
        for rnd in range(1, rounds + 1):
            if rnd == 2 and restart:  # kill -9 between rounds; the restart re-announces round 2
                if not pump(lambda: announced(2) is not None):
                    break
                agg.kill()
                agg.start()
                if not pump(lambda: announced(2, 2) is not None):
                    break
            if not pump(lambda: announced(rnd) is not None):
                break
            samples = agg.runs[-1][1].samples
            baseline.setdefault(len(agg.runs) - 1, samples[-1] if samples else 0)
            valid = genuine_updates(agents, keys, announced(rnd))
            ctx = FuzzContext(valid=valid, previous=previous, max_bytes=max_bytes, keys=keys)
            for cid in ids[:-1]:  # all but one genuine update, so replays are duplicates
                fuzzer.publish(topics.update(cid), valid[cid], 1)
                ctx.accepted[cid] = valid[cid]
                genuine_sent += 1
            for kind, who, packets in mutants(ctx, per_round, seed=seed * 1000 + rnd):
                for p in packets:
                    fuzzer.publish(topics.update(who) + p.suffix, p.payload, 1, p.retain)
                report.tried += 1
                report.by_kind.setdefault(kind, Counter())["sent"] += 1
                if kind in NO_STATUS:
                    report.dropped += 1
                    flood_bytes += sum(len(p.payload) for p in packets)
                else:
                    owed += 1
            if rnd == 1:
                flood_bytes += _flood(fuzzer, topics.update(ids[0]), flood_mib, max_bytes)
            if not pump(lambda: len(statuses) >= genuine_sent + owed):
                break
            fuzzer.publish(topics.update(ids[-1]), valid[ids[-1]], 1)
            genuine_sent += 1
            for cid in ids:
                clean.on_message(topics.update(cid), valid[cid], 0.0)
            previous = valid
        pump(lambda: len(statuses) >= genuine_sent + owed and agg.proc.poll() is not None, 60)
        exit_code = agg.proc.wait(30) if agg.proc.poll() is None else agg.proc.returncode
    finally:
        fuzzer.close()
        agg.stop()
    _book(report, statuses, ids, rounds, owed)
    report.crashes = int(exit_code != 0)
    report.model_matches_genuine_only = _model_matches(agg.output, clean)
    log = agg.log()
    report.retained_ignored = log.count("ignored a retained message")
    report.seconds = time.perf_counter() - start
    peaks = [rss.peak for _, rss in agg.runs]
    report.extra = {
        "statuses": len(statuses),
        "status_to_sender": all(m.client_id == who for who, m in statuses),
        "exit_code": exit_code,
        "restarted": restart,
        "logged_rejections": log.count("rejected update"),
        "logged_chunk_drops": log.count("dropped a chunked message"),
        "chunk_flood_mib": _mib(flood_bytes),
        "rss_mib": {
            "before_fuzz": [_mib(baseline.get(i, 0)) for i in range(len(peaks))],
            "peak": [_mib(p) for p in peaks],
            "growth": _mib(max(p - baseline.get(i, p) for i, p in enumerate(peaks))),
        },
    }
    if tmp is not None:
        tmp.cleanup()
    return report


def _flood(fuzzer, topic: str, mib: float, declared: int) -> int:
    """``mib`` MiB of 64 KiB chunks under one message id; returns the bytes sent."""
    head = struct.Struct("<4s8sIIQ")
    body, sent, mid = b"f" * (64 * 1024), 0, b"flood-id"
    for i in range(int(mib * 16)):
        payload = head.pack(b"EFCK", mid, i % 64, 64, declared) + body
        fuzzer.publish(topic + SEP + str(i % 64), payload, 1)
        sent += len(payload)
    return sent


def _book(report: FuzzReport, statuses: list, ids: list, rounds: int, owed: int) -> None:
    """Count statuses: the genuine ones (client, round) accepted, every other one a mutant's."""
    genuine = {(cid, r) for cid in ids for r in range(1, rounds + 1)}
    answered = 0
    for who, msg in statuses:
        if msg.params.get("accepted") and (who, msg.round) in genuine:
            report.accepted_genuine += 1
            genuine.discard((who, msg.round))
            continue
        answered += 1
        _count_status(report, None, who, msg)
    report.silent = max(0, owed - answered)


def _model_matches(output: Path, clean: AggregatorCore) -> bool:
    if not clean.done or not output.exists():
        return False
    tensors, _ = decode_tensors(output.read_bytes())
    return all(np.array_equal(np.asarray(tensors[n]), clean.global_model[n]) for n in SHAPES)
