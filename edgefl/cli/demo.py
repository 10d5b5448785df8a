"""`edgefl demo`: train → compress → export → pack → in-orbit federation → HTML report, in minutes."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefl.cli.common import console, emit_json, table
from edgefl.progress import progress_for


def command(
    out: Path = typer.Option(
        Path("runs/demo"), help="Run directory (new or empty); report at OUT/report.html."
    ),
    model: str = typer.Option("resnet20", help="Zoo model to train."),
    train_examples: int = typer.Option(6000, min=100, help="Training images from the shipped MNIST split."),
    epochs: int = typer.Option(1, min=1),
    compress: str = typer.Option("ghost", help="ghost or none."),
    satellites: int = typer.Option(6, min=1, help="Satellites in the simulated constellation."),
    hours: float = typer.Option(8.0, help="Simulated hours of orbit."),
    speedup: float = typer.Option(960.0, help="Simulated seconds per wall second."),
    broker: str = typer.Option(None, help="MQTT broker URL (default: the embedded broker)."),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
):
    """The whole edgefl journey on this machine, ending with a summary table and an HTML report."""
    from edgefl.demo import DemoConfig, run_demo

    planes = next(p for p in (3, 2, 1) if satellites % p == 0)
    cfg = DemoConfig(
        model=model,
        train_examples=train_examples,
        epochs=epochs,
        compress=compress,
        satellites=satellites,
        planes=planes,
        hours=hours,
        speedup=speedup,
        broker_url=broker,
        seed=seed,
    )
    with progress_for(not as_json) as progress:
        doc = run_demo(cfg, out, progress)
    if as_json:
        emit_json(doc)
        return
    console.print(
        table(
            f"edgefl demo ({doc['wall_s']} s)",
            ["step", "s", "result"],
            [[s["name"], s["seconds"], s["detail"]] for s in doc["steps"]],
        )
    )
    console.print(f"report: {doc['report']} — open it in a browser")
