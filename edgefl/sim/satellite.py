"""One satellite of a simulated constellation: ``python -m edgefl.sim.satellite CONFIG.json``.

The satellite is online only during its contact windows. Each window it reconnects with its
stable client id and a persistent session (so QoS 1 messages queue at the broker while it is out of
contact), reads the current round announcement (retained), uploads the update it trained since
its last contact if the federation can still use it, and downloads the newest global model.
Transfers take simulated time from the pass's link figures; a transfer that does not fit in the
rest of the window waits for the next one. Training happens on board between contacts and takes
``train_time_s`` simulated seconds. The agent logic is the runtime's AgentCore with the numpy
head trainer (the TX2 path); only the window loop is simulation.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

from edgefl.sim.clock import clock_from_file
from edgefl.sim.link import transfer_s

# wall seconds to wait, after connecting, for the retained round announcement before acting
RETAINED_GRACE_WALL_S = 1.0


@dataclass
class Pending:
    """An update trained on board, waiting for a contact to upload."""

    round: int
    topic: str
    payload: bytes
    ready_s: float


def update_still_useful(update_round: int, latest_round: int, mode: str, max_staleness: int) -> bool:
    """Sync rounds take only updates for the open round; buffered async ones within the staleness cap."""
    if mode == "sync":
        return update_round == latest_round
    return 0 <= latest_round - update_round <= max_staleness


def finish_time(now_s: float, nbytes: int, bps: float, latency_s: float, window_end_s: float) -> float | None:
    """When a transfer started now completes, or None if it would not complete in this window."""
    done = now_s + transfer_s(nbytes, bps, latency_s)
    return done if done <= window_end_s else None


class SatelliteRun:
    """The window loop of one satellite (I/O: transport, clock; logic: AgentCore + the rules above)."""

    def __init__(self, cfg: dict):
        from edgefl.runtime.agent import AgentConfig, AgentCore
        from edgefl.runtime.config import load_npz_data
        from edgefl.runtime.config import make_transport  # noqa: F401  (imported before the clock starts)
        from edgefl.runtime.head_trainer import HeadTrainer

        self.cfg = cfg
        x, y = load_npz_data(cfg["data"])
        self.trainer = HeadTrainer(x, y, seed=int(cfg.get("seed", 0)))
        self.core = AgentCore(AgentConfig(cfg["federation"], cfg["client_id"], int(cfg.get("seed", 0))))
        self.events: list[dict] = []
        self.pending: Pending | None = None
        self.job = None
        self.job_bytes = 0
        self.latest_round = 0
        self.clock = clock_from_file(cfg["clock_file"], cfg.get("ready_file"))

    def event(self, kind: str, at: float | None = None, **fields) -> None:
        """Log an event at simulated time ``at`` (a transfer's planned completion) or now."""
        now = self.clock.now()
        row = {
            "satellite": self.cfg.get("satellite", self.cfg["client_id"]),
            "kind": kind,
            "sim_time_s": round(now if at is None else at, 1),
            **fields,
        }
        if at is not None:
            row["observed_s"] = round(now, 1)  # when this process got to it (machine load shows here)
        self.events.append(row)

    def run(self) -> list[dict]:
        duration = float(self.cfg["duration_s"])
        for w in self.cfg["windows"]:
            if w["start_s"] >= duration:
                break
            self.clock.sleep_until(w["start_s"])
            self.contact(w, min(float(w["end_s"]), duration))
        return self.events

    def contact(self, w: dict, end_s: float) -> None:
        from edgefl.runtime.config import make_transport
        from edgefl.runtime.errors import WireError
        from edgefl.runtime.wire import decode_message

        cfg, core = self.cfg, self.core
        mqtt = dict(cfg["mqtt"], clean_session=False, username=cfg["client_id"])
        transport = make_transport(cfg["client_id"], mqtt, cfg.get("max_payload", 1024 * 1024))
        transport.connect()
        for topic in core.subscriptions():
            transport.subscribe(topic, 1)
        self.event("connect", window_end_s=round(end_s, 1))
        connected_wall = None  # wall time of the CONNACK of this contact
        fresh = False  # saw a round announcement during this contact
        received = 0  # round announcements this contact: >1 means some were queued while offline
        upload_blocked = download_blocked = False
        try:
            while self.clock.now() < end_s:
                for ev in transport.poll(0.05):
                    if ev.kind == "connected":
                        connected_wall = time.time()
                    elif ev.kind == "disconnected":
                        connected_wall = None
                    if ev.kind != "message":
                        continue
                    if ev.topic == core.topics.round:
                        try:
                            self.latest_round = max(self.latest_round, decode_message(ev.payload).round)
                            fresh = True
                            received += 1
                        except WireError:  # a bad announcement is the core's to report
                            pass
                    job = core.on_message(ev.topic, ev.payload)
                    if job is not None:
                        self.job, self.job_bytes = job, len(ev.payload)
                for kind, text in core.log:
                    self.event("log", level=kind, text=text)
                del core.log[:]
                if connected_wall is None:
                    continue
                if not fresh and time.time() - connected_wall < RETAINED_GRACE_WALL_S:
                    continue
                now = self.clock.now()
                p = self.pending
                if p is not None and not upload_blocked and p.ready_s <= now:
                    mode, cap = cfg["mode"], int(cfg.get("max_staleness", 0))
                    if not update_still_useful(p.round, self.latest_round, mode, cap):
                        self.event("drop", round=p.round, latest_round=self.latest_round)
                        self.pending = None
                    else:
                        done = finish_time(now, len(p.payload), w["sat_to_ground_bps"], w["latency_s"], end_s)
                        if done is None:
                            upload_blocked = True
                        else:
                            self.clock.sleep_until(done)
                            if self.publish(transport, p, done):
                                self.pending = None
                            else:  # link lost mid-transfer: try again next contact
                                upload_blocked = True
                if self.job is not None and self.pending is None and not download_blocked:
                    done = finish_time(now, self.job_bytes, w["ground_to_sat_bps"], w["latency_s"], end_s)
                    if done is None:
                        download_blocked = True  # the retained announcement comes again next contact
                        continue
                    self.clock.sleep_until(done)
                    job, self.job = self.job, None
                    self.event("download", at=done, round=job.round, bytes=self.job_bytes)
                    result = self.trainer.train(job.global_model, job.options)
                    topic, payload = core.on_trained(job, result)
                    self.pending = Pending(job.round, topic, payload, done + float(cfg["train_time_s"]))
        finally:
            try:
                transport.close()
            except RuntimeError as exc:  # paho: a publish that never completed (link lost)
                self.event("log", level="warn", text=f"close: {exc}")
            self.event("disconnect", round_messages=received)

    def publish(self, transport, p: Pending, done_s: float) -> bool:
        """Send an update at QoS 1 and wait for the broker's PUBACK; False if the link dropped."""
        try:
            transport.publish(p.topic, p.payload, 1, False)
            acked = transport.flush(10.0)
        except RuntimeError as exc:  # paho: publish failed, the client is not connected
            self.event("log", level="warn", text=f"upload of round {p.round} failed: {exc}")
            return False
        if not acked:
            self.event("log", level="warn", text=f"upload of round {p.round} not acknowledged")
            return False
        self.event("upload", at=done_s, round=p.round, bytes=len(p.payload))
        return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as fh:
        cfg = json.load(fh)
    events = SatelliteRun(cfg).run()
    with open(cfg["events_out"], "w") as fh:
        json.dump(events, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
