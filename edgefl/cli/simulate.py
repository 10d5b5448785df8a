"""`edgefl simulate`: an in-orbit federation on this machine (sync rounds vs async buffered rounds).

The options are the fields of ``edgefl.sim.simulate.SimConfig`` (edgefl.cli.derive): the command line
speaks hours and minutes where the settings hold seconds; only the run directory and the output options
are written here.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgefl.cli import derive, options, validate
from edgefl.cli.common import console, emit_json, table
from edgefl.cli.derive import param
from edgefl.cli.staging import relocate, staged
from edgefl.progress import progress_for
from edgefl.runtime.codecs import CODECS
from edgefl.runtime.strategies import STALENESS
from edgefl.sim.simulate import MODES, SimConfig
from edgefl.sim.workload import SENSOR_EFFECTS


# what SimConfig cannot say itself: flag names, the command line's units, ranges, registries, parsers
FIELDS = {
    "satellites": {"flag": "--clients", "low": 1, "high": 1000},
    "planes": {"low": 1},
    "altitude_km": {"low": 160, "high": 36000},
    "inclination_deg": {"low": 0, "high": 180},
    "stations": {"annotation": list[str], "option": lambda help, _: typer.Option(
        None, "--station", parser=options.parser_of(validate.station), metavar="STATION",
        help=f"{help} (repeatable; default {', '.join(SimConfig().stations)})")},
    "schedule": {"annotation": Path, "option": lambda help, _: options.existing(None, "file", "--schedule",
                                                                                 help=help)},
    "duration_s": {"flag": "--hours", "scale": 3600.0, "unit": "hours", "low": 0, "high": 24 * 30,
                   "low_open": True},
    "speedup": {"low": 0, "low_open": True},
    "modes": {"annotation": list[str], "option": lambda help, _: typer.Option(
        None, "--mode", parser=options.parser_of(validate.choice, MODES, "mode"), metavar="MODE",
        help=f"{help} (repeatable)")},
    "features": {"option": lambda help, default: typer.Option(
        default, "--features", parser=options.parser_of(validate.features), metavar="FEATURES", help=help)},
    "alpha": {"low": 0, "low_open": True},
    "max_per_satellite": {"low": 0},
    "max_test": {"low": 0},
    "init": {"names": ("zeros", "bundle"), "what": "init"},
    "sensor": {"names": SENSOR_EFFECTS, "what": "sensor effect"},
    "train": {"flag": "--train-option"},
    "train_time_s": {"flag": "--train-min", "scale": 60.0, "unit": "minutes", "low": 0, "low_open": True},
    "sync_deadline_s": {"flag": "--sync-deadline-h", "scale": 3600.0, "unit": "hours", "low": 0,
                        "low_open": True},
    "sync_quorum": {"flag": "--min-clients", "low": 0},
    "buffer_size": {"low": 1},
    "max_staleness": {"low": 0},
    "staleness_weight": {"names": STALENESS, "what": "staleness weight"},
    "codec": {"names": CODECS, "what": "codec"},
    "broker_url": {"option": lambda help, _: options.broker(None, help=help)},
    "target_accuracy": {"flag": "--target", "low": 0, "high": 1, "low_open": True},
    "target_gain": {"low": 0, "high": 1, "low_open": True},
    "seed": {"low": 0},
}
SKIP = ("startup_wall_s",)


def command(**values):
    """Simulate a constellation federating a model through intermittent ground contacts."""
    from edgefl.sim.simulate import simulate
    from edgefl.sim.summary import percent, start_note

    out, force, as_json = values["out"], values["force"], values["as_json"]
    settings = derive.field_values(SimConfig, values, FIELDS)
    settings["modes"] = list(dict.fromkeys(settings["modes"]))
    settings["schedule"] = str(settings["schedule"]) if settings["schedule"] else None
    if settings["target_gain"] is not None:
        settings["target_accuracy"] = None  # the target is the start + the gain
    cfg = SimConfig(**settings).check()
    hours = cfg.duration_s / 3600.0
    write_schedule = values["write_schedule"]
    if write_schedule:
        return _write_schedule(cfg, write_schedule, force, as_json)
    with staged(out, force) as stage, progress_for(not values["quiet"]) as progress:
        doc = simulate(cfg, stage, progress=progress)
        page = None
        if values["report"]:
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
            ["mode", "aggregation", "versions", "updates", "final accuracy",
             f"hours to {percent(doc['target_accuracy'])}", "bytes up"],
            [
                [m, r["label"], r["versions"], r["updates_sent"],
                 "—" if r["final_accuracy"] is None else percent(r["final_accuracy"]),
                 "not reached" if r["time_to_target_s"] is None else round(r["time_to_target_s"] / 3600.0, 2),
                 r["bytes_up"]]
                for m, r in rows.items()
            ],
        )
    )
    note = start_note(doc)
    if note:
        console.print(note)
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


derive.with_signature(command, [
    param("out", Path, options.out(Path("runs/sim"), "Run directory (results in OUT/sim/, report "
                                    "OUT/report.html).")),
    param("force", bool, options.force()),
    *derive.dataclass_options(SimConfig, FIELDS, skip=SKIP),
    param("write_schedule", Path, typer.Option(
        None, "--write-schedule", parser=options.parser_of(validate.writable_target), metavar="PATH",
        help="Only compute the schedule, write it here (.json/.csv), and stop.")),
    param("report", bool, typer.Option(True, help="Write OUT/report.html.")),
    param("as_json", bool, options.as_json()),
    param("quiet", bool, options.quiet()),
])
