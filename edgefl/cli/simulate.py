"""`edgefl simulate`: an in-orbit federation on this machine (sync rounds vs async buffered rounds)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefl.cli import options, validate
from edgefl.cli.common import console, emit_json, table
from edgefl.cli.staging import relocate, staged
from edgefl.progress import progress_for


def _sensors():
    from edgefl.sim.workload import SENSOR_EFFECTS

    return SENSOR_EFFECTS


def _codecs():
    from edgefl.runtime.codecs import CODECS

    return CODECS


def command(
    out: Path = options.out(Path("runs/sim"), "Run directory (results in OUT/sim/, report OUT/report.html)."),
    force: bool = options.force(),
    clients: int = options.integer(6, "--clients", low=1, high=1000, help="Satellites (clients) in the "
                                   "Walker constellation."),
    planes: int = options.integer(3, "--planes", low=1, help="Orbital planes (divides --clients)."),
    altitude_km: float = options.number(550.0, "--altitude-km", low=160, high=36000,
                                        help="Circular orbit altitude."),
    inclination_deg: float = options.number(97.6, "--inclination-deg", low=0, high=180,
                                            help="Orbit inclination (97.6 = sun-synchronous at 550 km)."),
    station: list[str] = typer.Option(None, "--station", parser=options.parser_of(validate.station),
                                      metavar="STATION", help="Ground station: known name or "
                                      "name:lat:lon[:min_el] (repeatable)."),
    schedule: Path = options.existing(None, "file", "--schedule",
                                      help="Contact schedule file (.json/.csv) instead of orbits."),
    write_schedule: Path = typer.Option(None, "--write-schedule", parser=options.parser_of(
        validate.writable_target), metavar="PATH",
        help="Only compute the schedule, write it here (.json/.csv), and stop."),
    hours: float = options.number(6.0, "--hours", low=0, high=24 * 30, low_open=True,
                                  help="Simulated hours."),
    speedup: float = options.number(600.0, "--speedup", low=0, low_open=True,
                                    help="Simulated seconds per wall-clock second."),
    mode: list[str] = typer.Option(None, "--mode",
                                   parser=options.parser_of(validate.choice, ("sync", "async"), "mode"),
                                   metavar="MODE", help="sync and/or async (default both)."),
    features: str = typer.Option("pixels", "--features", parser=options.parser_of(validate.features),
                                 metavar="FEATURES",
                                 help="'pixels' or an exported bundle dir (its features)."),
    init: str = options.choice("zeros", ("zeros", "bundle"), "init", "--init",
                               help="Starting head (bundle: the exported head; needs --features BUNDLE)."),
    sensor: str = options.choice("none", _sensors(), "sensor effect", "--sensor",
                                 help="In-orbit camera effect on images."),
    alpha: float = options.number(0.5, "--alpha", low=0, low_open=True,
                                  help="Dirichlet α of the non-IID split."),
    train_min: float = options.number(15.0, "--train-min", low=0, low_open=True,
                                      help="On-board training time per update (simulated minutes)."),
    sync_deadline_h: float = options.number(3.0, "--sync-deadline-h", low=0, low_open=True,
                                            help="Sync round deadline (simulated hours)."),
    min_clients: int = options.integer(0, "--min-clients", low=0, help="Sync quorum (0 = half the clients)."),
    buffer_size: int = options.integer(3, "--buffer-size", low=1,
                                       help="FedBuff K: updates per async version."),
    max_staleness: int = options.integer(4, "--max-staleness", low=0,
                                         help="Oldest accepted async base version (versions behind)."),
    codec: str = options.choice("none", _codecs(), "codec", "--codec", help="Update codec."),
    broker: str = options.broker(None, help="MQTT broker URL (default: the embedded broker)."),
    target: float = options.number(0.85, "--target", low=0, high=1, low_open=True,
                                   help="Target test accuracy for time-to-target."),
    target_gain: float = options.number(None, "--target-gain", low=0, high=1, low_open=True,
                                        help="Instead of --target: gain over the starting model (0.03)."),
    seed: int = options.seed(),
    report: bool = typer.Option(True, help="Write OUT/report.html."),
    as_json: bool = options.as_json(),
    quiet: bool = options.quiet(),
):
    """Simulate a constellation federating a model through intermittent ground contacts."""
    from edgefl.sim.simulate import SimConfig, simulate

    cfg = SimConfig(
        satellites=clients,
        planes=planes,
        altitude_km=altitude_km,
        inclination_deg=inclination_deg,
        stations=list(station) if station else ["svalbard", "troll"],
        schedule=str(schedule) if schedule else None,
        duration_s=hours * 3600.0,
        speedup=speedup,
        modes=list(dict.fromkeys(mode)) if mode else ["sync", "async"],
        features=features,
        init=init,
        sensor=sensor,
        alpha=alpha,
        train_time_s=train_min * 60.0,
        sync_deadline_s=sync_deadline_h * 3600.0,
        sync_quorum=min_clients,
        buffer_size=buffer_size,
        max_staleness=max_staleness,
        codec=codec,
        broker_url=broker,
        target_accuracy=None if target_gain is not None else target,
        target_gain=target_gain,
        seed=seed,
    ).check()
    if write_schedule:
        return _write_schedule(cfg, write_schedule, force, as_json)
    with staged(out, force) as stage, progress_for(not quiet) as progress:
        doc = simulate(cfg, stage, progress=progress)
        page = None
        if report:
            from edgefl.report import render_report

            page = render_report(stage)
    page = relocate(page, stage, out)
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
            ["mode", "aggregation", "versions", "updates", "final acc", f"h to {doc['target_accuracy']:g}",
             "bytes up"],
            [
                [m, r["label"], r["versions"], r["updates_sent"], r["final_accuracy"],
                 "not reached" if r["time_to_target_s"] is None else r["time_to_target_s"] / 3600.0,
                 r["bytes_up"]]
                for m, r in rows.items()
            ],
        )
    )
    if page:
        console.print(f"report: {page}")


def _write_schedule(cfg, path: Path, force: bool, as_json: bool):
    from edgefl.sim.schedule import write_schedule
    from edgefl.sim.simulate import build_schedule

    with staged(path, force, kind="file") as stage:
        sched = build_schedule(cfg)
        write_schedule(sched, stage)
    summary = dict(sched.summary(), path=str(path))
    if as_json:
        emit_json(summary)
        return
    console.print(table("schedule", ["figure", "value"], summary.items()))
