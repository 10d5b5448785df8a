"""End to end: satellites as processes on the embedded broker (and Mosquitto), sync vs async."""

import json

import pytest

from edgefl.errors import EdgeflError
from edgefl.sim.schedule import read_schedule
from edgefl.sim.simulate import SimConfig, simulate

SATS = ("sat-a", "sat-b", "sat-c")


def _schedule(path, hours=3.0, every_s=2400.0, length_s=600.0):
    """Each satellite sees the station for 10 min every 40 min, staggered by 10 min."""
    rows = ["satellite,station,start_s,end_s"]
    for i, sat in enumerate(SATS):
        t = 600.0 * i
        while t < hours * 3600:
            rows.append(f"{sat},gs,{t},{t + length_s}")
            t += every_s
    path.write_text("\n".join(rows) + "\n")
    return path


def _config(tmp_path, **kw):
    base = dict(
        schedule=str(_schedule(tmp_path / "hand.csv")),
        duration_s=3 * 3600.0,
        speedup=1200.0,
        max_per_satellite=300,
        train_time_s=300.0,
        sync_deadline_s=3600.0,
        sync_quorum=2,
        buffer_size=2,
        target_accuracy=0.6,
        startup_wall_s=120.0,
    )
    base.update(kw)
    return SimConfig(**base)


def _inside_a_window(event, windows, slack_s=150.0):
    return any(c.start_s - slack_s <= event["sim_time_s"] <= c.end_s + slack_s for c in windows)


def test_sync_and_async_side_by_side_on_the_embedded_broker(tmp_path):
    doc = simulate(_config(tmp_path), tmp_path / "run")
    schedule = read_schedule(tmp_path / "run" / "sim" / "schedule.json")
    assert json.loads((tmp_path / "run" / "sim" / "simulation.json").read_text())["runs"].keys() == {
        "sync",
        "async",
    }
    for mode, run in doc["runs"].items():
        hist = run["history"]
        assert hist[0]["version"] == 0 and hist[0]["accuracy"] < 0.2  # the zero head
        assert run["versions"] >= 2, (mode, run)
        assert run["final_accuracy"] > 0.6, (mode, run["history"])
        assert [r["bytes_up"] for r in hist] == sorted(r["bytes_up"] for r in hist)
        # transfers complete inside a contact window, and the satellite is online only in its windows
        for e in run["events"]:
            assert _inside_a_window(e, schedule.for_satellite(e["satellite"]), slack_s=1.0), (mode, e)
        # a model announced while a satellite was out of contact is found at its next contact
        announced = {r["version"] + 1: r["sim_time_s"] for r in hist}
        late = [
            e
            for e in run["events"]
            if e["kind"] == "download"
            and e["round"] in announced
            and any(
                c.start_s - 1 <= e["sim_time_s"] <= c.end_s and announced[e["round"]] < c.start_s
                for c in schedule.for_satellite(e["satellite"])
            )
        ]
        assert late, mode
    # persistent sessions: announcements published while a satellite was away were queued for it
    events = []
    for sat in SATS:
        events += json.loads((tmp_path / "run" / "sim" / "events" / f"async-{sat}.json").read_text())
    for e in events:
        windows = schedule.for_satellite(e["satellite"])
        if e["kind"] == "connect":  # connects when its window opens (wall-clock jitter allowed)
            assert any(c.start_s - 60 <= e["sim_time_s"] <= c.start_s + 600 for c in windows), e
    assert max(e.get("round_messages", 0) for e in events if e["kind"] == "disconnect") >= 2
    sync_rounds = doc["runs"]["sync"]["rounds"]
    assert sync_rounds and all(len(r["clients"]) >= 2 for r in sync_rounds)  # quorum 2 of 3
    assert doc["runs"]["async"]["versions"] > doc["runs"]["sync"]["versions"]


def test_runs_on_a_given_broker_url(tmp_path, mosquitto):
    doc = simulate(
        _config(tmp_path, modes=["async"], duration_s=1.5 * 3600, broker_url=mosquitto.url), tmp_path / "r"
    )
    assert set(doc["runs"]) == {"async"} and doc["runs"]["async"]["versions"] >= 1


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(EdgeflError, match="unknown mode"):
        simulate(SimConfig(modes=["lockstep"]), tmp_path)
    with pytest.raises(EdgeflError, match="positive"):
        simulate(SimConfig(speedup=0), tmp_path)
