"""`edgefl demo`: train → compress → export → pack → in-orbit federation → HTML report, in minutes."""

from __future__ import annotations

from pathlib import Path


from edgefl.cli import options
from edgefl.cli.common import console, emit_json, table
from edgefl.cli.staging import staged
from edgefl.models.registry import model_names
from edgefl.progress import progress_for

TRAIN_SPLIT = 8000  # images in the training part of the shipped MNIST split (README "Data")


def command(
    out: Path = options.out(Path("runs/demo"), "Run directory; report at OUT/report.html."),
    force: bool = options.force(),
    model: str = options.choice("resnet20", model_names(), "model", "--model", help="Zoo model to train."),
    train_examples: int = options.integer(6000, "--train-examples", low=100, high=TRAIN_SPLIT,
                                          help="Training images from the shipped MNIST split."),
    epochs: int = options.integer(1, "--epochs", low=1),
    compress: str = options.choice("ghost", ("ghost", "none"), "compression", "--compress",
                                   help="Compression step."),
    clients: int = options.integer(6, "--clients", low=1, high=60,
                                   help="Satellites (clients) in the simulated constellation."),
    hours: float = options.number(8.0, "--hours", low=0, high=24 * 30, low_open=True,
                                  help="Simulated hours of orbit."),
    speedup: float = options.number(960.0, "--speedup", low=0, low_open=True,
                                    help="Simulated seconds per wall second."),
    broker: str = options.broker(None, help="MQTT broker URL (default: the embedded broker)."),
    seed: int = options.seed(),
    as_json: bool = options.as_json(),
    quiet: bool = options.quiet(),
):
    """The whole edgefl journey on this machine, ending with a summary table and an HTML report."""
    from edgefl.demo import DemoConfig, run_demo

    planes = next(p for p in (3, 2, 1) if clients % p == 0)
    cfg = DemoConfig(
        model=model,
        train_examples=train_examples,
        epochs=epochs,
        compress=compress,
        satellites=clients,
        planes=planes,
        hours=hours,
        speedup=speedup,
        broker_url=broker,
        seed=seed,
    )
    with staged(out, force, in_place=True) as target, progress_for(not quiet) as progress:
        doc = run_demo(cfg, target, progress)
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
