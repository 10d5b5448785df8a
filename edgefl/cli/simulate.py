"""`edgefl simulate`: an in-orbit federation on this machine (sync rounds vs async buffered rounds)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefl.cli.common import console, emit_json, table
from edgefl.errors import EdgeflError
from edgefl.progress import progress_for


def _station(spec: str):
    """'svalbard' or 'name:lat:lon[:min_elevation]'."""
    parts = spec.split(":")
    if len(parts) == 1:
        return spec
    if len(parts) not in (3, 4):
        raise EdgeflError(f"--station {spec!r}: use a known name or name:lat:lon[:min_elevation_deg]")
    try:
        nums = [float(p) for p in parts[1:]]
    except ValueError:
        raise EdgeflError(f"--station {spec!r}: lat, lon and elevation must be numbers") from None
    out = {"name": parts[0], "lat_deg": nums[0], "lon_deg": nums[1]}
    if len(nums) == 3:
        out["min_elevation_deg"] = nums[2]
    return out


def command(
    out: Path = typer.Option(Path("runs/sim"), help="Run directory (results in OUT/sim/, report in OUT/)."),
    satellites: int = typer.Option(6, min=1, help="Satellites in the Walker constellation."),
    planes: int = typer.Option(3, min=1, help="Orbital planes."),
    altitude_km: float = typer.Option(550.0, help="Circular orbit altitude."),
    inclination_deg: float = typer.Option(97.6, help="Orbit inclination (97.6 = sun-synchronous at 550 km)."),
    station: list[str] = typer.Option(None, help="Ground station: known name or name:lat:lon[:min_el]."),
    schedule: Path = typer.Option(None, help="Contact schedule file (.json/.csv) instead of orbits."),
    write_schedule: Path = typer.Option(None, help="Only compute the schedule, write it here, and stop."),
    hours: float = typer.Option(6.0, help="Simulated hours."),
    speedup: float = typer.Option(600.0, help="Simulated seconds per wall-clock second."),
    mode: list[str] = typer.Option(None, help="sync and/or async (default both, side by side)."),
    features: str = typer.Option("pixels", help="'pixels' or an exported bundle dir (its features output)."),
    init: str = typer.Option(
        "zeros", help="Starting head: zeros, or bundle (the exported head; needs a bundle)."
    ),
    sensor: str = typer.Option("none", help="In-orbit camera effect on images: none or defocus (5x5 blur)."),
    alpha: float = typer.Option(0.5, help="Dirichlet α of the non-IID split."),
    train_min: float = typer.Option(15.0, help="On-board training time per update (simulated minutes)."),
    sync_deadline_h: float = typer.Option(3.0, help="Sync round deadline (simulated hours)."),
    quorum: int = typer.Option(0, help="Sync quorum (0 = half the satellites)."),
    buffer_size: int = typer.Option(3, help="FedBuff K: updates per async version."),
    max_staleness: int = typer.Option(4, help="Oldest accepted async base version (versions behind)."),
    codec: str = typer.Option("none", help="Update codec (none, fp16, int8, topk, fedfq, ...)."),
    broker: str = typer.Option(None, help="MQTT broker URL (default: the embedded broker)."),
    target: float = typer.Option(0.85, help="Target test accuracy for time-to-target."),
    target_gain: float = typer.Option(
        None, help="Instead of --target: points above the starting model (0.03)."
    ),
    seed: int = typer.Option(0),
    report: bool = typer.Option(True, help="Write OUT/report.html."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
):
    """Simulate a constellation federating a model through intermittent ground contacts."""
    from edgefl.sim.simulate import SimConfig, build_schedule, simulate

    cfg = SimConfig(
        satellites=satellites,
        planes=planes,
        altitude_km=altitude_km,
        inclination_deg=inclination_deg,
        stations=[_station(s) for s in station] if station else ["svalbard", "troll"],
        schedule=str(schedule) if schedule else None,
        duration_s=hours * 3600.0,
        speedup=speedup,
        modes=list(mode) if mode else ["sync", "async"],
        features=features,
        init=init,
        sensor=sensor,
        alpha=alpha,
        train_time_s=train_min * 60.0,
        sync_deadline_s=sync_deadline_h * 3600.0,
        sync_quorum=quorum,
        buffer_size=buffer_size,
        max_staleness=max_staleness,
        codec=codec,
        broker_url=broker,
        target_accuracy=None if target_gain is not None else target,
        target_gain=target_gain,
        seed=seed,
    ).check()
    if write_schedule:
        from edgefl.sim.schedule import write_schedule as write

        sched = build_schedule(cfg)
        path = write(sched, write_schedule)
        summary = dict(sched.summary(), path=str(path))
        emit_json(summary) if as_json else console.print(
            table("schedule", ["figure", "value"], summary.items())
        )
        return
    with progress_for(not as_json) as progress:
        doc = simulate(cfg, out, progress=progress)
    page = None
    if report:
        from edgefl.report import render_report

        page = render_report(out)
    rows = {
        m: {
            k: r[k]
            for k in ("label", "versions", "updates_sent", "final_accuracy", "time_to_target_s", "bytes_up")
        }
        for m, r in doc["runs"].items()
    }
    if as_json:
        emit_json(
            {"out": str(out), "report": str(page) if page else None, "wall_s": doc["wall_s"], "runs": rows}
        )
        return
    console.print(
        table(
            f"in-orbit federation, {hours:g} simulated h ({doc['wall_s']} s wall)",
            [
                "mode",
                "aggregation",
                "versions",
                "updates",
                "final acc",
                f"h to {doc['target_accuracy']:g}",
                "bytes up",
            ],
            [
                [
                    m,
                    r["label"],
                    r["versions"],
                    r["updates_sent"],
                    r["final_accuracy"],
                    "not reached" if r["time_to_target_s"] is None else r["time_to_target_s"] / 3600.0,
                    r["bytes_up"],
                ]
                for m, r in rows.items()
            ],
        )
    )
    if page:
        console.print(f"report: {page}")
