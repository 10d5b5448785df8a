"""The in-orbit federation: satellites as separate processes, online only in their contact windows.

One run = one constellation and schedule, and for each mode (``sync``: rounds with a deadline and
a quorum; ``async``: FedBuff buffered rounds) one aggregator process at the ground station plus
one process per satellite, all on one MQTT broker (the embedded one unless a URL is given) and
one simulated clock. An observer records every global model the aggregators announce and scores
it on the held-out test split; satellites log their transfers. Results: accuracy against
simulated time, round and bytes sent, per mode, in ``OUT/sim/simulation.json``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgefl.errors import EdgeflError
from edgefl.progress import NullProgress
from edgefl.sim.brokers import broker_session
from edgefl.sim.clock import start_clock
from edgefl.sim.schedule import Schedule, read_schedule, schedule_from_orbits, write_schedule

MODES = ("sync", "async")


@dataclass
class SimConfig:
    """Settings of a simulation (every field has a light default); `edgefl simulate` offers each field.

    Attributes:
        satellites: satellites (clients) in the Walker constellation.
        planes: orbital planes (divides the number of satellites).
        altitude_km: circular orbit altitude.
        inclination_deg: orbit inclination (97.6 = sun-synchronous at 550 km).
        stations: ground stations: a known name or name:lat:lon[:min_el].
        schedule: contact schedule file (.json/.csv) instead of orbits.
        duration_s: simulated time.
        speedup: simulated seconds per wall-clock second.
        modes: sync and/or async (default both).
        features: 'pixels' or an exported bundle directory (its features).
        alpha: Dirichlet α of the non-IID split.
        max_per_satellite: images a satellite holds at most (0: its whole share).
        max_test: held-out images the global models are scored on (0: all 2,000).
        init: starting head (bundle: the exported head; needs a bundle as features).
        sensor: in-orbit camera effect on the images.
        train: the satellites' local training options (epochs, lr, batch_size).
        train_time_s: on-board training time per update.
        sync_deadline_s: sync round deadline.
        sync_quorum: sync quorum (0 = half the clients).
        buffer_size: FedBuff K: updates per async version.
        max_staleness: oldest accepted async base version (versions behind).
        staleness_weight: weight of a stale async update.
        codec: update codec.
        broker_url: MQTT broker URL (default: the embedded broker).
        target_accuracy: target test accuracy for time-to-target.
        target_gain: instead of a target accuracy: gain over the starting model (e.g. 0.03).
        seed: random seed.
        startup_wall_s: wall seconds the simulation's processes may take to start.
    """

    satellites: int = 6
    planes: int = 3
    altitude_km: float = 550.0
    inclination_deg: float = 97.6
    stations: list = field(default_factory=lambda: ["svalbard", "troll"])
    schedule: str | None = None
    duration_s: float = 6 * 3600.0
    speedup: float = 600.0
    modes: list = field(default_factory=lambda: list(MODES))
    features: str = "pixels"
    alpha: float = 0.5
    max_per_satellite: int = 0
    max_test: int = 0
    init: str = "zeros"
    sensor: str = "none"
    train: dict = field(default_factory=lambda: {"epochs": 1, "lr": 0.01, "batch_size": 32})
    train_time_s: float = 900.0
    sync_deadline_s: float = 3 * 3600.0
    sync_quorum: int = 0
    buffer_size: int = 3
    max_staleness: int = 4
    staleness_weight: str = "inv_sqrt_1p"
    codec: str = "none"
    broker_url: str | None = None
    target_accuracy: float | None = 0.85
    target_gain: float | None = None  # instead: target = accuracy of the starting model + gain
    seed: int = 0
    startup_wall_s: float = 120.0

    def check(self) -> SimConfig:
        bad = [m for m in self.modes if m not in MODES]
        if bad:
            raise EdgeflError(f"unknown mode(s) {bad} — use {list(MODES)}")
        if (self.target_accuracy is None) == (self.target_gain is None):
            raise EdgeflError("give exactly one of target accuracy and target gain")
        if self.speedup <= 0 or self.duration_s <= 0:
            raise EdgeflError("speedup and duration must be positive — e.g. --speedup 600 --hours 8")
        return self

    @property
    def quorum(self) -> int:
        return self.sync_quorum or max(1, math.ceil(self.satellites / 2))


def build_schedule(cfg: SimConfig) -> Schedule:
    """The schedule file if given, else contact windows computed from a Walker constellation."""
    from edgefl.sim.orbit import station_from_spec, walker_constellation

    if cfg.schedule:
        return read_schedule(cfg.schedule)
    orbits = walker_constellation(cfg.satellites, cfg.planes, cfg.altitude_km, cfg.inclination_deg)
    return schedule_from_orbits(orbits, [station_from_spec(s) for s in cfg.stations], cfg.duration_s)


def aggregator_config(cfg: SimConfig, mode: str, federation: str, clients: list[str]) -> dict:
    from edgefl.runtime.aggregator import AggregatorConfig

    common = dict(
        federation=federation,
        mode=mode,
        codec=cfg.codec,
        train=cfg.train,
        rounds=100000,
        clients=clients,
        seed=cfg.seed,
    )
    if mode == "sync":
        acfg = AggregatorConfig(min_clients=cfg.quorum, deadline_s=cfg.sync_deadline_s, **common)
    else:
        acfg = AggregatorConfig(
            min_clients=1,
            deadline_s=10 * cfg.duration_s,
            buffer_size=cfg.buffer_size,
            max_staleness=cfg.max_staleness,
            staleness_weight=cfg.staleness_weight,
            **common,
        )
    return asdict(acfg.check())


def mode_label(cfg: SimConfig, mode: str, n: int) -> str:
    if mode == "sync":
        return f"sync FedAvg, deadline {cfg.sync_deadline_s / 3600:g} h, quorum {cfg.quorum}/{n}"
    return f"async FedBuff K={cfg.buffer_size}, max staleness {cfg.max_staleness}, {cfg.staleness_weight}"


class Processes:
    """Children of this run; always terminated on exit."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def spawn(self, name: str, module: str, config_path: Path) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(config_path)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        self.procs.append((name, proc))

    def running(self) -> int:
        return sum(p.poll() is None for _, p in self.procs)

    def failed(self) -> list[str]:
        return [f"{n} (exit {p.returncode})" for n, p in self.procs if p.poll() not in (None, 0)]

    def stop(self) -> None:
        for _, p in self.procs:
            if p.poll() is None:
                p.terminate()
        for _, p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def simulate(cfg: SimConfig, out: str | Path, progress=None) -> dict:
    """Run the federation in every requested mode (concurrently, one broker, one clock).

    Args:
        cfg: settings.
        out: run directory; results go to OUT/sim/.
        progress: the progress seam (edgefl.progress); one task advancing in simulated minutes.

    Returns:
        the simulation document also written to OUT/sim/simulation.json.
    """
    from edgefl.runtime.config import save_model_tensors
    from edgefl.sim.workload import initial_head, make_workload, write_shares

    cfg.check()
    sim_dir = Path(out) / "sim"
    for sub in ("configs", "logs", "data", "events"):
        (sim_dir / sub).mkdir(parents=True, exist_ok=True)
    schedule = build_schedule(cfg)
    write_schedule(schedule, sim_dir / "schedule.json")
    sats = schedule.satellites
    cfg = replace(cfg, satellites=len(sats))  # a schedule file decides the constellation's size
    cfg = replace(cfg, sync_quorum=cfg.quorum)  # the quorum that runs is recorded (0 asks for half)
    duration = min(cfg.duration_s, schedule.duration_s) if cfg.schedule else cfg.duration_s
    work = make_workload(
        len(sats), cfg.features, cfg.alpha, cfg.seed, cfg.max_per_satellite, cfg.max_test, cfg.sensor
    )
    shares = write_shares(work, sats, sim_dir / "data")
    head = initial_head(work, cfg.init)
    save_model_tensors(str(sim_dir / "data" / "init.safetensors"), head)
    run_id = uuid.uuid4().hex[:6]
    feds = {mode: f"orbit-{mode}-{run_id}" for mode in cfg.modes}
    wall_start = time.time()
    with broker_session(cfg.broker_url, sim_dir / "logs" / "broker.log") as mqtt:
        procs = Processes(sim_dir / "logs")
        clock_file = sim_dir / "clock.json"
        clock_file.unlink(missing_ok=True)
        try:
            _spawn_all(cfg, procs, clock_file, mqtt, feds, sats, schedule, shares, sim_dir, duration)
            _wait_ready(procs, sim_dir / "ready", cfg.startup_wall_s)
            observer, topics = _observer(mqtt, feds)
            clock = start_clock(str(clock_file), cfg.speedup)
            seen = _observe(observer, topics, clock, procs, work, duration, progress)
            failed = procs.failed()
        finally:
            procs.stop()
    if failed:
        raise EdgeflError(f"simulation processes failed: {failed} — see {sim_dir / 'logs'}")
    doc = _results(cfg, feds, seen, sim_dir, sats, duration)
    doc["start"] = start_facts(cfg, seen, work, head)
    doc["wall_s"] = round(time.time() - wall_start, 1)
    (sim_dir / "simulation.json").write_text(json.dumps(doc, indent=1))
    return doc


def _wait_ready(procs: Processes, ready_dir: Path, timeout_wall_s: float) -> None:
    """Wait until every child has imported its modules and said so."""
    end = time.time() + timeout_wall_s
    while len(list(ready_dir.glob("*.ready"))) < len(procs.procs):
        if procs.failed():
            raise EdgeflError(f"simulation processes failed at start: {procs.failed()} — see the logs")
        if time.time() > end:
            raise EdgeflError(
                f"simulation processes not ready after {timeout_wall_s:.0f} s — machine overloaded?"
            )
        time.sleep(0.1)


def _spawn_all(cfg, procs, clock_file, mqtt, feds, sats, schedule, shares, sim_dir, duration) -> None:
    ready = sim_dir / "ready"
    ready.mkdir(exist_ok=True)
    for old in ready.glob("*.ready"):
        old.unlink()
    common = {"mqtt": mqtt, "clock_file": str(clock_file), "duration_s": duration}
    for mode, fed in feds.items():
        ground = dict(
            common,
            ready_file=str(ready / f"ground-{mode}.ready"),
            aggregator=aggregator_config(cfg, mode, fed, [f"{mode}-{s}" for s in sats]),
            client_id=f"ground-{fed}",
            model=str(sim_dir / "data" / "init.safetensors"),
            history_out=str(sim_dir / "events" / f"ground-{mode}.json"),
        )
        path = sim_dir / "configs" / f"ground-{mode}.json"
        path.write_text(json.dumps(ground, indent=1))
        procs.spawn(f"ground-{mode}", "edgefl.sim.ground", path)
        for i, sat in enumerate(sats):
            windows = [
                {
                    "start_s": c.start_s,
                    "end_s": c.end_s,
                    "ground_to_sat_bps": c.ground_to_sat_bps,
                    "sat_to_ground_bps": c.sat_to_ground_bps,
                    "latency_s": c.latency_s,
                }
                for c in schedule.for_satellite(sat)
            ]
            sat_cfg = dict(
                common,
                ready_file=str(ready / f"{mode}-{sat}.ready"),
                client_id=f"{mode}-{sat}",
                satellite=sat,
                federation=fed,
                mode=mode,
                windows=windows,
                max_staleness=cfg.max_staleness,
                train_time_s=cfg.train_time_s,
                data=str(shares[sat]),
                seed=cfg.seed * 1000 + i,
                events_out=str(sim_dir / "events" / f"{mode}-{sat}.json"),
            )
            path = sim_dir / "configs" / f"{mode}-{sat}.json"
            path.write_text(json.dumps(sat_cfg, indent=1))
            procs.spawn(f"{mode}-{sat}", "edgefl.sim.satellite", path)


def _observer(mqtt: dict, feds: dict):
    """A clean-session client on every federation's (retained) round topic, connected."""
    from edgefl.runtime.config import make_transport
    from edgefl.runtime.loops import wait_connected
    from edgefl.runtime.transport import Topics

    topics = {Topics(fed).round: mode for mode, fed in feds.items()}
    name = f"observer-{uuid.uuid4().hex[:6]}"
    transport = make_transport(name, dict(mqtt, clean_session=True, username=name))
    transport.connect()
    for t in topics:
        transport.subscribe(t, 1)
    wait_connected(transport)
    return transport, topics


def _observe(transport, topics, clock, procs, work, duration, progress) -> dict:
    """Record (sim time, round, accuracy, bytes) of every global model announced, until the end."""
    from edgefl.runtime.wire import decode_message
    from edgefl.sim.workload import head_accuracy

    seen: dict[str, dict[int, dict]] = {m: {} for m in topics.values()}
    last_tick, shown = 0.0, 0
    task = (progress or NullProgress()).task("in-orbit federation (sim min)", int(duration // 60))
    deadline_wall = clock.wall_at(duration) + 30.0
    try:
        while time.time() < deadline_wall:
            for ev in transport.poll(0.2):
                if ev.kind != "message" or ev.topic not in topics or not ev.payload:
                    continue
                msg = decode_message(ev.payload)
                mode = topics[ev.topic]
                if msg.round not in seen[mode]:
                    seen[mode][msg.round] = {
                        "version": msg.round - 1,
                        "sim_time_s": round(max(0.0, clock.now()), 1),
                        "accuracy": head_accuracy(msg.tensors, work.test_x, work.test_y),
                        "bytes_model": len(ev.payload),
                    }
            if procs.failed():
                break
            now = clock.now()
            if now > duration and procs.running() == 0:
                break
            if time.time() - last_tick > 0.5:
                last_tick = time.time()
                minutes = int(min(max(now, 0.0), duration) // 60)
                latest = {m: s[max(s)]["accuracy"] for m, s in seen.items() if s}
                task.advance(minutes - shown, **{m: f"{100 * a:.1f}%" for m, a in latest.items()})
                shown = minutes
    finally:
        for t in topics:  # leave no retained model behind on a shared broker
            transport.publish(t, b"", 1, True)
        transport.close()
    return seen


def target_for(cfg: SimConfig, seen: dict) -> float:
    """The absolute target, or the starting model's accuracy (version 0, shared by every mode) + gain."""
    if cfg.target_gain is None:
        return float(cfg.target_accuracy)
    starts = [rows[min(rows)]["accuracy"] for rows in seen.values() if rows]
    return round(min(starts) + cfg.target_gain, 4) if starts else float("nan")


def start_facts(cfg: SimConfig, seen: dict, work, head: dict) -> dict:
    """The starting model in orbit: its accuracy on the test images as the satellites see them (version 0
    of the histories, as plotted) and, under a sensor effect, on the same images as on the ground."""
    from edgefl.sim.workload import SENSOR_DESCRIPTIONS, head_accuracy

    starts = [rows[min(rows)]["accuracy"] for rows in seen.values() if rows]
    facts = {"sensor": cfg.sensor, "sensor_description": SENSOR_DESCRIPTIONS[cfg.sensor],
             "test_images": int(len(work.test_y)), "accuracy": min(starts) if starts else None}
    if work.ground_test_x is not None:
        facts["accuracy_on_ground"] = head_accuracy(head, work.ground_test_x, work.test_y)
    return facts


def _results(cfg, feds, seen, sim_dir, sats, duration) -> dict:
    runs = {}
    target = target_for(cfg, seen)
    for mode in feds:
        events = []
        for sat in sats:
            path = sim_dir / "events" / f"{mode}-{sat}.json"
            if path.is_file():
                events += json.loads(path.read_text())
        events.sort(key=lambda e: e["sim_time_s"])
        ground_path = sim_dir / "events" / f"ground-{mode}.json"
        rounds = json.loads(ground_path.read_text()) if ground_path.is_file() else []
        history = []
        for _, row in sorted(seen[mode].items()):
            t = row["sim_time_s"]
            ups = [e for e in events if e["kind"] == "upload" and e["sim_time_s"] <= t]
            downs = [e for e in events if e["kind"] == "download" and e["sim_time_s"] <= t]
            history.append(
                dict(
                    row,
                    bytes_up=sum(e["bytes"] for e in ups),
                    updates=len(ups),
                    bytes_down=sum(e["bytes"] for e in downs),
                )
            )
        reached = [r["sim_time_s"] for r in history if r["accuracy"] >= target]
        uploads = [e for e in events if e["kind"] == "upload"]
        runs[mode] = {
            "label": mode_label(cfg, mode, len(sats)),
            "federation": feds[mode],
            "history": history,
            "events": [e for e in events if e["kind"] in ("download", "upload", "drop")],
            "rounds": rounds,
            "versions": len(history) - 1 if history else 0,
            "final_accuracy": history[-1]["accuracy"] if history else None,
            "best_accuracy": max((r["accuracy"] for r in history), default=None),
            "time_to_target_s": reached[0] if reached else None,
            "updates_sent": len(uploads),
            "updates_received": sum(len(r.get("clients", [])) for r in rounds),
            "dropped_stale": sum(e["kind"] == "drop" for e in events),
            "bytes_up": sum(e["bytes"] for e in uploads),
            "bytes_down": sum(e["bytes"] for e in events if e["kind"] == "download"),
        }
    return {
        "format": "edgefl.simulation",
        "version": 1,
        "target_accuracy": target,
        "duration_s": duration,
        "satellites": sats,
        "schedule": "schedule.json",
        "config": dict(asdict(cfg), target_accuracy=target),  # the target that was aimed at
        "runs": runs,
    }
