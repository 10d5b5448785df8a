"""Contact schedules: computed from orbits or read from a file (JSON or CSV), written back the same way.

A schedule is the list of contacts (satellite, station, [start, end) in simulated seconds, and the
link figures of that pass). JSON files carry provenance; CSV files are for hand-written schedules
and need only ``satellite,start_s,end_s`` — missing link columns take the nominal link figures.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from edgefl.errors import EdgeflError
from edgefl.sim.link import Link, LinkModel, link_for_window
from edgefl.sim.orbit import GroundStation, Orbit, contact_windows

SCHEDULE_FORMAT = "edgefl.schedule"
SCHEDULE_VERSION = 1


@dataclass(frozen=True)
class Contact:
    """A contact window with its link figures."""

    satellite: str
    station: str
    start_s: float
    end_s: float
    ground_to_sat_bps: float
    sat_to_ground_bps: float
    latency_s: float
    max_elevation_deg: float = float("nan")
    min_range_km: float = float("nan")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def link(self) -> Link:
        return Link(self.ground_to_sat_bps, self.sat_to_ground_bps, self.latency_s)


@dataclass
class Schedule:
    """Every contact of a constellation over [0, duration_s]."""

    duration_s: float
    contacts: list[Contact]
    satellites: list[str]
    stations: list[str]
    source: dict = field(default_factory=dict)

    def for_satellite(self, name: str) -> list[Contact]:
        """The satellite's contacts in time order, overlapping passes (two stations) merged."""
        own = sorted((c for c in self.contacts if c.satellite == name), key=lambda c: c.start_s)
        merged: list[Contact] = []
        for c in own:
            if merged and c.start_s <= merged[-1].end_s:
                last = merged[-1]
                merged[-1] = Contact(
                    name,
                    last.station if last.station == c.station else f"{last.station}+{c.station}",
                    last.start_s,
                    max(last.end_s, c.end_s),
                    max(last.ground_to_sat_bps, c.ground_to_sat_bps),
                    max(last.sat_to_ground_bps, c.sat_to_ground_bps),
                    min(last.latency_s, c.latency_s),
                    max(last.max_elevation_deg, c.max_elevation_deg),
                    min(last.min_range_km, c.min_range_km),
                )
            else:
                merged.append(c)
        return merged

    def summary(self) -> dict:
        per_sat = {s: self.for_satellite(s) for s in self.satellites}
        online = {s: sum(c.duration_s for c in cs) for s, cs in per_sat.items()}
        return {
            "duration_s": self.duration_s,
            "satellites": len(self.satellites),
            "stations": len(self.stations),
            "contacts": len(self.contacts),
            "mean_contact_s": sum(c.duration_s for c in self.contacts) / max(1, len(self.contacts)),
            "mean_online_fraction": (sum(online.values()) / len(online) / self.duration_s) if online else 0.0,
        }


def schedule_from_orbits(
    orbits: dict[str, Orbit],
    stations: list[GroundStation],
    duration_s: float,
    link_model: LinkModel | None = None,
    step_s: float = 10.0,
    min_duration_s: float = 60.0,
) -> Schedule:
    """Compute contacts and their link figures from orbit parameters.

    Args:
        orbits: satellite name → orbit.
        stations: ground stations.
        duration_s: simulated span.
        link_model: nominal link figures (defaults to LinkModel()).
        step_s: orbit sampling step.
        min_duration_s: passes shorter than this are dropped.
    """
    link_model = link_model or LinkModel()
    contacts = []
    for w in contact_windows(orbits, stations, duration_s, step_s, min_duration_s):
        link = link_for_window(w, link_model)
        contacts.append(
            Contact(
                w.satellite,
                w.station,
                w.start_s,
                w.end_s,
                link.ground_to_sat_bps,
                link.sat_to_ground_bps,
                link.latency_s,
                w.max_elevation_deg,
                w.min_range_km,
            )
        )
    source = {
        "kind": "orbits",
        "orbits": {k: asdict(v) for k, v in orbits.items()},
        "stations": [asdict(s) for s in stations],
        "link_model": asdict(link_model),
        "step_s": step_s,
        "min_duration_s": min_duration_s,
    }
    return Schedule(float(duration_s), contacts, sorted(orbits), [s.name for s in stations], source)


# ---------------------------------------------------------------- files

_CONTACT_FIELDS = [f.name for f in fields(Contact)]
_REQUIRED = ("satellite", "start_s", "end_s")


def contact_from_row(row: dict, where: str, default_link: LinkModel) -> Contact:
    """One contact from a dict of strings or numbers; missing link figures take nominal values."""
    missing = [k for k in _REQUIRED if row.get(k) in (None, "")]
    if missing:
        raise EdgeflError(
            f"{where}: missing {', '.join(missing)} — every contact needs satellite, start_s, end_s"
        )
    defaults = {
        "station": "ground",
        "ground_to_sat_bps": default_link.ground_to_sat_bps,
        "sat_to_ground_bps": default_link.sat_to_ground_bps,
        "latency_s": default_link.overhead_s,
        "max_elevation_deg": float("nan"),
        "min_range_km": float("nan"),
    }
    values = {}
    for name in _CONTACT_FIELDS:
        raw = row.get(name)
        raw = defaults[name] if raw in (None, "") else raw
        if name in ("satellite", "station"):
            values[name] = str(raw)
            continue
        try:
            values[name] = float(raw)
        except (TypeError, ValueError):
            raise EdgeflError(f"{where}: {name}={raw!r} is not a number") from None
    contact = Contact(**values)
    if not (math.isfinite(contact.start_s) and math.isfinite(contact.end_s)) or contact.start_s < 0:
        raise EdgeflError(f"{where}: start_s must be a finite time ≥ 0 (got {contact.start_s})")
    if contact.end_s <= contact.start_s:
        raise EdgeflError(f"{where}: end_s ({contact.end_s}) must be after start_s ({contact.start_s})")
    if contact.ground_to_sat_bps <= 0 or contact.sat_to_ground_bps <= 0 or contact.latency_s < 0:
        raise EdgeflError(f"{where}: link rates must be positive and latency non-negative")
    return contact


def schedule_from_rows(rows: list[dict], source: dict, duration_s: float | None = None) -> Schedule:
    link = LinkModel()
    name = source.get("path", "schedule")
    contacts = [contact_from_row(r, f"{name} contact {i + 1}", link) for i, r in enumerate(rows)]
    if not contacts:
        raise EdgeflError(f"{source.get('path', 'schedule')}: no contacts — add at least one row")
    contacts.sort(key=lambda c: (c.start_s, c.satellite, c.station))
    end = max(c.end_s for c in contacts)
    return Schedule(
        float(duration_s) if duration_s is not None else end,
        contacts,
        sorted({c.satellite for c in contacts}),
        sorted({c.station for c in contacts}),
        source,
    )


def _json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None


def write_json(schedule: Schedule, path: Path) -> None:
    doc = {
        "format": SCHEDULE_FORMAT,
        "version": SCHEDULE_VERSION,
        "duration_s": schedule.duration_s,
        "satellites": schedule.satellites,
        "stations": schedule.stations,
        "source": schedule.source,
        "contacts": [
            {k: (_json_number(v) if isinstance(v, float) else v) for k, v in asdict(c).items()}
            for c in schedule.contacts
        ],
    }
    path.write_text(json.dumps(doc, indent=1))


def read_json(path: Path) -> Schedule:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EdgeflError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}) — fix the file") from None
    if not isinstance(doc, dict) or doc.get("format") != SCHEDULE_FORMAT:
        raise EdgeflError(f"{path}: not an edgefl schedule (format must be {SCHEDULE_FORMAT!r})")
    if doc.get("version") != SCHEDULE_VERSION:
        raise EdgeflError(
            f"{path}: schedule version {doc.get('version')} unsupported — use version {SCHEDULE_VERSION}"
        )
    rows = doc.get("contacts") or []
    source = dict(doc.get("source") or {}, path=str(path))
    sched = schedule_from_rows(rows, source, doc.get("duration_s"))
    sched.satellites = sorted(set(doc.get("satellites") or []) | set(sched.satellites))
    return sched


def write_csv(schedule: Schedule, path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=_CONTACT_FIELDS)
        writer.writeheader()
        for c in schedule.contacts:
            writer.writerow(asdict(c))


def read_csv(path: Path) -> Schedule:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        unknown = set(reader.fieldnames or []) - set(_CONTACT_FIELDS)
        if unknown:
            raise EdgeflError(f"{path}: unknown columns {sorted(unknown)} — allowed: {_CONTACT_FIELDS}")
        rows = list(reader)
    return schedule_from_rows(rows, {"kind": "file", "path": str(path)})


WRITERS = {".json": write_json, ".csv": write_csv}
READERS = {".json": read_json, ".csv": read_csv}


def write_schedule(schedule: Schedule, path: str | Path) -> Path:
    """Write a schedule as JSON or CSV (by suffix)."""
    path = Path(path)
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        raise EdgeflError(f"{path}: schedule files end in {sorted(WRITERS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(schedule, path)
    return path


def read_schedule(path: str | Path) -> Schedule:
    """Read a schedule written by write_schedule (or a hand-written CSV)."""
    path = Path(path)
    if not path.is_file():
        raise EdgeflError(
            f"schedule file {path} not found — compute one with `edgefl simulate --write-schedule`"
        )
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise EdgeflError(f"{path}: schedule files end in {sorted(READERS)}")
    return reader(path)
