import numpy as np
import pytest

from edgefl.errors import EdgeflError
from edgefl.sim.orbit import (
    GroundStation,
    Orbit,
    contact_windows,
    look_angles,
    walker_constellation,
    windows_from_elevation,
)


def test_period_matches_kepler_at_550_km():
    # T = 2π sqrt(a³/μ) with a = 6928.137 km → 5738.9 s (95.65 min), computed by hand.
    assert Orbit(550, 53).period_s == pytest.approx(5738.99, abs=0.5)


def test_sun_synchronous_orbit_precesses_one_degree_per_day():
    rate_deg_per_day = np.degrees(Orbit(550, 97.59).raan_rate_rad_s) * 86400
    assert rate_deg_per_day == pytest.approx(0.9856, abs=0.01)


def test_satellite_at_zenith_has_elevation_90_and_range_altitude():
    el, rng = look_angles(Orbit(550, 0.0), GroundStation("equator", 0.0, 0.0), np.array([0.0]))
    assert el[0] == pytest.approx(90.0, abs=1e-6)
    assert rng[0] == pytest.approx(550.0, abs=1e-6)


def test_equatorial_orbit_never_seen_from_svalbard():
    orbits = {"eq": Orbit(550, 0.0)}
    assert contact_windows(orbits, [GroundStation("svalbard", 78.23, 15.39, 10.0)], 86400, 20) == []


def test_polar_orbit_seen_from_pole_once_per_revolution():
    orbit = Orbit(550, 90.0)
    duration = 6 * orbit.period_s
    windows = contact_windows({"p": orbit}, [GroundStation("pole", 90.0, 0.0, 10.0)], duration, 5)
    assert 5 <= len(windows) <= 7
    gaps = np.diff([w.start_s for w in windows])
    assert np.allclose(gaps, orbit.period_s, rtol=0.01)


def test_window_edges_sit_on_the_elevation_mask():
    station = GroundStation("kiruna", 67.86, 20.96, 10.0)
    windows = contact_windows({"s": Orbit(550, 97.6, 30.0, 10.0)}, [station], 86400, 10)
    assert windows, "a sun-synchronous satellite passes over Kiruna within a day"
    inner = [w for w in windows if 0 < w.start_s and w.end_s < 86400]
    edges = np.array([t for w in inner for t in (w.start_s, w.end_s)])
    el, _ = look_angles(Orbit(550, 97.6, 30.0, 10.0), station, edges)
    assert np.allclose(el, 10.0, atol=0.2)
    for w in windows:
        assert w.max_elevation_deg >= 10.0 and w.end_s > w.start_s


def test_windows_from_elevation_hand_example():
    t = np.array([0.0, 10, 20, 30, 40, 50])
    el = np.array([0.0, 20, 30, 20, 0, 0])
    rng = np.array([9.0, 5, 1, 5, 9, 9])
    # mask 10: crosses at t = 5 (0→20) and t = 35 (20→0); peak 30 at t = 20, range 1.
    assert windows_from_elevation(t, el, rng, 10.0) == [(5.0, 35.0, 30.0, 1.0)]
    # open at both ends → clipped to the sampled span
    assert windows_from_elevation(t, el + 50, rng, 10.0) == [(0.0, 50.0, 80.0, 1.0)]


def test_walker_constellation_spreads_planes_and_slots():
    orbits = walker_constellation(6, 3, 550, 97.6)
    assert sorted(orbits) == [f"sat-{k:02d}" for k in range(6)]
    assert sorted({o.raan_deg for o in orbits.values()}) == [0.0, 120.0, 240.0]
    with pytest.raises(EdgeflError, match="multiple of planes"):
        walker_constellation(5, 3, 550, 97.6)


def test_bad_parameters_are_refused_with_a_fix():
    with pytest.raises(EdgeflError, match="altitude"):
        Orbit(50, 53)
    with pytest.raises(EdgeflError, match="not on Earth"):
        GroundStation("x", 95, 0)
