"""`edgefl demo`: train → compress → export → pack → in-orbit federation → HTML report, in minutes.

The options are the fields of ``edgefl.demo.DemoConfig`` (edgefl.cli.derive); only the run directory and
the output options are written here.
"""

from __future__ import annotations

from pathlib import Path

from edgefl.cli import derive, options
from edgefl.cli.common import console, emit_json, table
from edgefl.cli.derive import param
from edgefl.cli.staging import staged
from edgefl.demo import DemoConfig
from edgefl.models.registry import model_names
from edgefl.progress import progress_for

TRAIN_SPLIT = 8000  # images in the training part of the shipped MNIST split (README "Data")

# what DemoConfig cannot say itself: flag names, ranges, registries
FIELDS = {
    "model": {"names": model_names(), "what": "model"},
    "train_examples": {"low": 100, "high": TRAIN_SPLIT},
    "epochs": {"low": 1},
    "compress": {"names": ("ghost", "none"), "what": "compression"},
    "compress_epochs": {"low": 1},
    "target_bits": {"low": 1, "high": 8},
    "satellites": {"flag": "--clients", "low": 1, "high": 60},
    "planes": {"low": 0},
    "hours": {"low": 0, "high": 24 * 30, "low_open": True},
    "speedup": {"low": 0, "low_open": True},
    "broker_url": {"option": lambda help, _: options.broker(None, help=help)},
    "seed": {"low": 0},
    "latency_runs": {"low": 1},
}


def command(**values):
    """The whole edgefl journey on this machine, ending with a summary table and an HTML report."""
    from edgefl.demo import run_demo
    from edgefl.errors import EdgeflError

    cfg = DemoConfig(**derive.field_values(DemoConfig, values, FIELDS))
    if cfg.planes and cfg.satellites % cfg.planes:
        raise EdgeflError(f"--planes {cfg.planes} does not divide --clients {cfg.satellites} — pass a "
                          "divisor, or 0 to let the demo choose")
    with staged(values["out"], values["force"], in_place=True) as target, \
            progress_for(not values["quiet"]) as progress:
        doc = run_demo(cfg, target, progress)
    if values["as_json"]:
        emit_json(doc)
        return
    console.print(
        table(
            f"edgefl demo ({doc['wall_s']} s)",
            ["step", "seconds", "result"],
            [[s["name"], s["seconds"], s["detail"]] for s in doc["steps"]],
        )
    )
    console.print(f"report: {doc['report']} (written in {doc['report_seconds']} s) — open it in a browser")


derive.with_signature(command, [
    param("out", Path, options.out(Path("runs/demo"), "Run directory; report at OUT/report.html.")),
    param("force", bool, options.force()),
    *derive.dataclass_options(DemoConfig, FIELDS),
    param("as_json", bool, options.as_json()),
    param("quiet", bool, options.quiet()),
])
