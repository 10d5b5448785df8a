import math

import pytest

from edgefl.errors import EdgeflError
from edgefl.sim.link import LinkModel, link_for_window, transfer_s
from edgefl.sim.orbit import ContactWindow, KNOWN_STATIONS, walker_constellation
from edgefl.sim.schedule import Contact, Schedule, read_schedule, schedule_from_orbits, write_schedule


def test_transfer_time_hand_computed():
    # 1 MB over 2 Mbit/s = 4 s, plus 0.05 s latency
    assert transfer_s(1_000_000, 2_000_000, 0.05) == pytest.approx(4.05)


def test_link_rate_falls_with_range_down_to_the_floor():
    model = LinkModel(ground_to_sat_bps=100.0, sat_to_ground_bps=1000.0, reference_range_km=600, floor=0.25)
    near = link_for_window(ContactWindow("s", "g", 0, 1, 80, 550), model)
    mid = link_for_window(ContactWindow("s", "g", 0, 1, 20, 1200), model)
    far = link_for_window(ContactWindow("s", "g", 0, 1, 5, 3000), model)
    assert near.sat_to_ground_bps == 1000.0  # capped at nominal
    assert mid.sat_to_ground_bps == pytest.approx(250.0)  # (600/1200)² = 0.25
    assert far.ground_to_sat_bps == pytest.approx(25.0)  # floor
    assert far.latency_s == pytest.approx(3000 / 299792.458 + 0.05)


@pytest.fixture(scope="module")
def schedule():
    orbits = walker_constellation(4, 2, 550, 97.6)
    return schedule_from_orbits(orbits, [KNOWN_STATIONS["svalbard"], KNOWN_STATIONS["troll"]], 6 * 3600)


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_schedule_round_trips_through_files(tmp_path, schedule, suffix):
    path = write_schedule(schedule, tmp_path / f"s{suffix}")
    back = read_schedule(path)
    assert len(back.contacts) == len(schedule.contacts) > 0
    for a, b in zip(schedule.contacts, back.contacts):
        assert (a.satellite, a.station) == (b.satellite, b.station)
        assert a.start_s == pytest.approx(b.start_s)
        assert a.sat_to_ground_bps == pytest.approx(b.sat_to_ground_bps)
    assert back.satellites == schedule.satellites


def test_hand_written_csv_needs_only_three_columns(tmp_path):
    path = tmp_path / "hand.csv"
    path.write_text("satellite,start_s,end_s\nsat-a,0,600\nsat-b,300,900\nsat-a,5000,5400\n")
    s = read_schedule(path)
    assert s.satellites == ["sat-a", "sat-b"] and s.duration_s == 5400
    assert s.contacts[0].sat_to_ground_bps == LinkModel().sat_to_ground_bps
    assert math.isnan(s.contacts[0].max_elevation_deg)


@pytest.mark.parametrize(
    "body, match",
    [
        ("satellite,start_s,end_s\nsat-a,600,100\n", "must be after"),
        ("satellite,start_s\nsat-a,600\n", "missing end_s"),
        ("satellite,start_s,end_s\nsat-a,abc,100\n", "not a number"),
        ("satellite,start_s,end_s,colour\nsat-a,0,100,red\n", "unknown columns"),
    ],
)
def test_bad_schedule_rows_name_the_problem(tmp_path, body, match):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(EdgeflError, match=match):
        read_schedule(path)


def test_missing_or_foreign_files_are_refused(tmp_path):
    with pytest.raises(EdgeflError, match="not found"):
        read_schedule(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(EdgeflError, match="not an edgefl schedule"):
        read_schedule(tmp_path / "x.json")


def test_overlapping_passes_over_two_stations_merge_per_satellite():
    mk = lambda st, a, b: Contact("s", st, a, b, 10.0, 20.0, 0.1)  # noqa: E731
    sched = Schedule(1000, [mk("g1", 0, 100), mk("g2", 50, 200), mk("g1", 500, 600)], ["s"], ["g1", "g2"])
    merged = sched.for_satellite("s")
    assert [(c.start_s, c.end_s, c.station) for c in merged] == [(0, 200, "g1+g2"), (500, 600, "g1")]
