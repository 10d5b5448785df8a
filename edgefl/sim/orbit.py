"""Contact windows between satellites on circular orbits and ground stations (pure numpy).

Model (deliberately simple, documented so nobody mistakes it for an SGP4 propagator):
- circular orbit: altitude, inclination, right ascension of the ascending node (RAAN) and the
  argument of latitude at t = 0 ("phase"); secular J2 drift of the RAAN (keeps sun-synchronous
  orbits sun-synchronous), no other perturbations;
- spherical Earth of radius R_E rotating at the sidereal rate; Greenwich at RAAN 0 at t = 0;
- a station sees a satellite while its elevation is at or above the station's minimum elevation;
  window edges are refined by linear interpolation between samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgefl.errors import EdgeflError

MU_EARTH_KM3_S2 = 398600.4418
R_EARTH_KM = 6378.137
OMEGA_EARTH_RAD_S = 7.2921159e-5
J2 = 1.08262668e-3
C_KM_S = 299792.458


@dataclass(frozen=True)
class Orbit:
    """A circular orbit.

    Args:
        altitude_km: height above the spherical Earth.
        inclination_deg: 0 = equatorial, 90 = polar, ~97.6 = sun-synchronous at 550 km.
        raan_deg: right ascension of the ascending node at t = 0.
        phase_deg: argument of latitude at t = 0 (position along the orbit).
    """

    altitude_km: float
    inclination_deg: float
    raan_deg: float = 0.0
    phase_deg: float = 0.0

    def __post_init__(self) -> None:
        if not 150.0 <= self.altitude_km <= 40000.0:
            raise EdgeflError(
                f"orbit altitude {self.altitude_km} km is outside 150–40000 km — "
                "give a LEO/MEO altitude such as 550"
            )
        if not 0.0 <= self.inclination_deg <= 180.0:
            raise EdgeflError(f"inclination {self.inclination_deg}° is outside 0–180° — use e.g. 53 or 97.6")

    @property
    def semi_major_axis_km(self) -> float:
        return R_EARTH_KM + self.altitude_km

    @property
    def mean_motion_rad_s(self) -> float:
        return float(np.sqrt(MU_EARTH_KM3_S2 / self.semi_major_axis_km**3))

    @property
    def period_s(self) -> float:
        return 2.0 * np.pi / self.mean_motion_rad_s

    @property
    def raan_rate_rad_s(self) -> float:
        """Secular J2 drift of the node."""
        ratio = R_EARTH_KM / self.semi_major_axis_km
        return -1.5 * self.mean_motion_rad_s * J2 * ratio**2 * np.cos(np.radians(self.inclination_deg))


@dataclass(frozen=True)
class GroundStation:
    """A ground station on the spherical Earth.

    Args:
        name: identifier used in schedules and reports.
        lat_deg, lon_deg: geodetic position (treated as geocentric).
        min_elevation_deg: the antenna mask; passes below it are not contacts.
    """

    name: str
    lat_deg: float
    lon_deg: float
    min_elevation_deg: float = 10.0

    def __post_init__(self) -> None:
        if not -90.0 <= self.lat_deg <= 90.0 or not -180.0 <= self.lon_deg <= 360.0:
            raise EdgeflError(
                f"station {self.name!r} at lat {self.lat_deg}, lon {self.lon_deg} is not on Earth — "
                "latitude must be in [-90, 90] and longitude in [-180, 360]"
            )
        if not 0.0 <= self.min_elevation_deg < 90.0:
            raise EdgeflError(f"station {self.name!r}: min elevation must be in [0, 90) degrees")


@dataclass(frozen=True)
class ContactWindow:
    """One pass of a satellite over a station: [start_s, end_s) in simulated seconds from t = 0."""

    satellite: str
    station: str
    start_s: float
    end_s: float
    max_elevation_deg: float
    min_range_km: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict:
        return asdict(self)


def eci_from_orbit(orbit: Orbit, t_s: np.ndarray) -> np.ndarray:
    """Satellite positions in the inertial frame, shape (T, 3) km."""
    t = np.asarray(t_s, dtype=np.float64)
    u = np.radians(orbit.phase_deg) + orbit.mean_motion_rad_s * t
    raan = np.radians(orbit.raan_deg) + orbit.raan_rate_rad_s * t
    inc = np.radians(orbit.inclination_deg)
    a = orbit.semi_major_axis_km
    cu, su, co, so = np.cos(u), np.sin(u), np.cos(raan), np.sin(raan)
    x = co * cu - so * su * np.cos(inc)
    y = so * cu + co * su * np.cos(inc)
    z = su * np.sin(inc)
    return a * np.stack([x, y, z], axis=-1)


def ecef_from_eci(r_eci: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Rotate inertial positions into the Earth-fixed frame (Greenwich angle 0 at t = 0)."""
    theta = OMEGA_EARTH_RAD_S * np.asarray(t_s, dtype=np.float64)
    c, s = np.cos(theta), np.sin(theta)
    x, y, z = r_eci[..., 0], r_eci[..., 1], r_eci[..., 2]
    return np.stack([c * x + s * y, -s * x + c * y, z], axis=-1)


def ecef_from_station(station: GroundStation) -> np.ndarray:
    lat, lon = np.radians(station.lat_deg), np.radians(station.lon_deg)
    return R_EARTH_KM * np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def look_angles(orbit: Orbit, station: GroundStation, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elevation (degrees) and slant range (km) of the satellite seen from the station."""
    sat = ecef_from_eci(eci_from_orbit(orbit, t_s), t_s)
    gs = ecef_from_station(station)
    d = sat - gs
    rng = np.linalg.norm(d, axis=-1)
    up = gs / np.linalg.norm(gs)
    elevation = np.degrees(np.arcsin(np.clip(d @ up / rng, -1.0, 1.0)))
    return elevation, rng


def windows_from_elevation(
    t_s: np.ndarray, elevation: np.ndarray, rng: np.ndarray, min_elevation_deg: float
) -> list[tuple[float, float, float, float]]:
    """Runs of samples at or above the mask → (start, end, max elevation, min range).

    Edges are interpolated linearly between the straddling samples; a window open at the first or
    last sample is clipped to the sampled span.
    """
    above = elevation >= min_elevation_deg
    if not above.any():
        return []
    edges = np.diff(above.astype(np.int8))
    starts = list(np.nonzero(edges == 1)[0] + 1)
    ends = list(np.nonzero(edges == -1)[0] + 1)
    if above[0]:
        starts.insert(0, 0)
    if above[-1]:
        ends.append(len(above))
    out = []
    for i0, i1 in zip(starts, ends):
        start = float(t_s[i0]) if i0 == 0 else _crossing(t_s, elevation, i0 - 1, min_elevation_deg)
        end = float(t_s[i1 - 1]) if i1 == len(above) else _crossing(t_s, elevation, i1 - 1, min_elevation_deg)
        seg = slice(i0, i1)
        out.append((start, end, float(elevation[seg].max()), float(rng[seg].min())))
    return out


def _crossing(t: np.ndarray, el: np.ndarray, i: int, level: float) -> float:
    """Time where el crosses level between samples i and i + 1."""
    e0, e1 = el[i] - level, el[i + 1] - level
    frac = 0.5 if e1 == e0 else e0 / (e0 - e1)
    return float(t[i] + frac * (t[i + 1] - t[i]))


def contact_windows(
    orbits: dict[str, Orbit],
    stations: list[GroundStation],
    duration_s: float,
    step_s: float = 10.0,
    min_duration_s: float = 0.0,
) -> list[ContactWindow]:
    """All contact windows of every satellite with every station over [0, duration_s].

    Args:
        orbits: satellite name → orbit.
        stations: ground stations (each with its own elevation mask).
        duration_s: simulated span to search.
        step_s: sampling step; passes shorter than ~step_s may be missed.
        min_duration_s: drop windows shorter than this (too short to move a model).

    Returns:
        Windows sorted by start time, then satellite name.
    """
    if duration_s <= 0 or step_s <= 0:
        raise EdgeflError("duration and step must be positive — e.g. duration 21600 s, step 10 s")
    if not orbits or not stations:
        raise EdgeflError("need at least one satellite and one ground station to compute contacts")
    t = np.arange(0.0, duration_s + step_s, step_s)
    t = t[t <= duration_s + 1e-9]
    found = []
    for sat_name, orbit in orbits.items():
        for station in stations:
            el, rng = look_angles(orbit, station, t)
            for start, end, max_el, min_rng in windows_from_elevation(t, el, rng, station.min_elevation_deg):
                if end - start >= min_duration_s:
                    found.append(ContactWindow(sat_name, station.name, start, end, max_el, min_rng))
    return sorted(found, key=lambda w: (w.start_s, w.satellite, w.station))


def walker_constellation(
    n_satellites: int,
    n_planes: int,
    altitude_km: float,
    inclination_deg: float,
    phasing: int = 1,
    prefix: str = "sat",
) -> dict[str, Orbit]:
    """Walker-delta pattern i:t/p/f — planes spread over 360° of RAAN, satellites evenly in each plane.

    Returns:
        name → Orbit with names ``{prefix}-{k:02d}``.
    """
    if n_satellites < 1 or n_planes < 1 or n_satellites % n_planes:
        raise EdgeflError(
            f"a Walker pattern needs satellites ({n_satellites}) to be a positive multiple "
            f"of planes ({n_planes})"
        )
    per_plane = n_satellites // n_planes
    orbits = {}
    for k in range(n_satellites):
        plane, slot = divmod(k, per_plane)
        raan = 360.0 * plane / n_planes
        phase = 360.0 * slot / per_plane + 360.0 * phasing * plane / n_satellites
        orbits[f"{prefix}-{k:02d}"] = Orbit(altitude_km, inclination_deg, raan % 360.0, phase % 360.0)
    return orbits


# Polar stations that see a sun-synchronous satellite on most orbits (public positions, rounded).
KNOWN_STATIONS = {
    "svalbard": GroundStation("svalbard", 78.23, 15.39, 5.0),
    "troll": GroundStation("troll", -72.01, 2.53, 5.0),
    "inuvik": GroundStation("inuvik", 68.32, -133.55, 5.0),
    "kiruna": GroundStation("kiruna", 67.86, 20.96, 5.0),
    "darmstadt": GroundStation("darmstadt", 49.87, 8.65, 10.0),
}


def station_from_spec(spec: str | dict) -> GroundStation:
    """A station from a known name ('svalbard') or a dict {name, lat_deg, lon_deg, min_elevation_deg}."""
    if isinstance(spec, str):
        if spec not in KNOWN_STATIONS:
            raise EdgeflError(
                f"unknown ground station {spec!r} — use one of {sorted(KNOWN_STATIONS)} or give lat/lon"
            )
        return KNOWN_STATIONS[spec]
    try:
        return GroundStation(
            str(spec["name"]),
            float(spec["lat_deg"]),
            float(spec["lon_deg"]),
            float(spec.get("min_elevation_deg", 10)),
        )
    except KeyError as exc:
        raise EdgeflError(f"ground station {spec!r} lacks {exc} — give name, lat_deg and lon_deg") from None
