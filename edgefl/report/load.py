"""Find and read what a run directory holds (every part is optional; the report shows what exists).

Run directory layout (written by `edgefl demo`, `edgefl simulate --out`, or by hand):

    run.json                      steps with wall times and a summary (demo)
    compression.json              method, per-layer bits/BOPs, summary
    bundle/manifest.json          export: profile, opset, precision, parity
    latency.json                  {"engine", "batch", "samples_ms": [...], "p50_ms", "p95_ms"}
    sim/simulation.json           federation histories per mode (sync, async)
    sim/schedule.json             contact windows
    metrics.jsonl                 per-round federation metrics, one JSON object a line
                                  (`edgefl aggregate --metrics`: round, time, bytes each way, accuracy, ...)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgefl.errors import EdgeflError


@dataclass
class RunData:
    root: Path
    run: dict | None = None
    compression: dict | None = None
    manifest: dict | None = None
    latency: dict | None = None
    simulation: dict | None = None
    schedule: object | None = None  # edgefl.sim.schedule.Schedule
    rounds: list | None = None  # rows of metrics.jsonl
    notes: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        parts = (self.run, self.compression, self.manifest, self.latency, self.simulation, self.rounds)
        return not any(parts)


def _read_json(path: Path, notes: list[str]) -> dict | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        notes.append(f"{path.name} skipped: not valid JSON ({getattr(exc, 'msg', exc)})")
        return None
    if not isinstance(doc, dict):
        notes.append(f"{path.name} skipped: not a JSON object")
        return None
    return doc


def read_rounds(path: Path, notes: list[str]) -> list | None:
    """Rows of a per-round metrics file (JSON lines); a torn or foreign line is skipped with a note."""
    if not path.is_file():
        return None
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("round"), int):
            rows.append(row)
        elif line.strip():
            notes.append(f"{path.name} line {n} skipped: not a round's JSON object")
    return rows or None


def read_bundle_manifest(root: Path, notes: list[str]) -> dict | None:
    """The manifest of the run's bundle (bundle/, else the first folder holding one), its seal checked."""
    from edgefl.runtime.bundle import MANIFEST, read_manifest
    from edgefl.runtime.errors import EdgeRuntimeError

    candidates = [root / "bundle", *sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))]
    for folder in dict.fromkeys(c for c in candidates if (c / MANIFEST).is_file()):
        try:
            return read_manifest(str(folder), verify=False)
        except EdgeRuntimeError as exc:
            notes.append(f"{folder.name}/{MANIFEST} skipped: {exc}")
    return None


def load_run(run_dir: str | Path) -> RunData:
    """Read every known artefact of a run directory."""
    root = Path(run_dir)
    if not root.is_dir():
        state = "is a file, not a directory" if root.exists() else "not found"
        raise EdgeflError(
            f"run directory {root} {state} — pass the --out folder of `edgefl demo` or `simulate`"
        )
    data = RunData(root)
    data.run = _read_json(root / "run.json", data.notes)
    data.compression = _read_json(root / "compression.json", data.notes)
    data.latency = _read_json(root / "latency.json", data.notes)
    data.rounds = read_rounds(root / "metrics.jsonl", data.notes)
    data.manifest = read_bundle_manifest(root, data.notes)
    sim_dir = root / "sim" if (root / "sim" / "simulation.json").is_file() else root
    data.simulation = _read_json(sim_dir / "simulation.json", data.notes)
    if data.simulation is not None and not isinstance(data.simulation.get("runs"), dict):
        data.notes.append("simulation.json skipped: no runs in it (not written by edgefl simulate)")
        data.simulation = None
    schedule_path = sim_dir / "schedule.json"
    if schedule_path.is_file():
        from edgefl.sim.schedule import read_schedule

        try:
            data.schedule = read_schedule(schedule_path)
        except EdgeflError as exc:
            data.notes.append(f"schedule skipped: {exc}")
    if data.empty() and data.notes:
        raise EdgeflError(f"{root}: {'; '.join(data.notes)} — nothing else to report; re-create the run")
    if data.empty():
        raise EdgeflError(
            f"{root} holds nothing to report (no run.json, simulation.json, compression.json, "
            "bundle/manifest.json, latency.json or metrics.jsonl) — run `edgefl demo --out DIR` first"
        )
    return data
