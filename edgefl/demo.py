"""`edgefl demo`: the whole journey on this machine in a few minutes, ending with an HTML report.

train (shipped MNIST) → compress (GHOST, quick settings) → export for jetson-tx2 with verification →
latency on this machine → pack the agent → in-orbit federation (sync vs async, embedded broker) →
report. Every step is a library call of the matching `edgefl` command; the demo only picks light
settings and records what each step produced in RUN_DIR/run.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgefl.errors import EdgeflError

PROFILE = "jetson-tx2"


@dataclass
class DemoConfig:
    """Light settings: the demo must finish in minutes on 2 CPU cores; `edgefl demo` offers each field.

    Attributes:
        model: zoo model to train.
        train_examples: training images from the shipped MNIST split.
        epochs: training epochs.
        compress: compression step: ghost, or none (export the float model).
        compress_epochs: GHOST quantization-aware training epochs.
        target_bits: GHOST's mean weight bits at most.
        satellites: satellites (clients) in the simulated constellation.
        planes: orbital planes (divides the number of satellites; 0: 3, 2 or 1, the first that does).
        hours: simulated hours of orbit.
        speedup: simulated seconds per wall second.
        broker_url: MQTT broker URL (default: the embedded broker).
        seed: random seed.
        latency_runs: timed inferences of the latency step.
    """

    model: str = "resnet20"
    train_examples: int = 6000  # of the shipped 8,000-image training split
    epochs: int = 1
    compress: str = "ghost"  # "ghost" | "none"
    compress_epochs: int = 1
    target_bits: float = 4.0
    satellites: int = 6
    planes: int = 0
    hours: float = 8.0
    speedup: float = 960.0
    broker_url: str | None = None
    seed: int = 0
    latency_runs: int = 200


@dataclass
class DemoRun:
    cfg: DemoConfig
    out: Path
    progress: object
    steps: list[dict] = field(default_factory=list)
    facts: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ steps


def step_train(run: DemoRun) -> str:
    import torch

    from edgefl.checkpoint import save_checkpoint
    from edgefl.data import MNIST_PREPROCESSING, ArrayData, load_mnist, train_test_split
    from edgefl.models import build_model
    from edgefl.train import seed_everything, train_classifier

    torch.set_num_threads(1)
    cfg = run.cfg
    train, test = train_test_split(load_mnist(), 0.2, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    pick = np.sort(rng.permutation(len(train))[: cfg.train_examples])
    subset = ArrayData(train.x[pick], train.y[pick])
    np.savez(run.out / "data" / "train_subset.npz", x=subset.x, y=subset.y)
    seed_everything(cfg.seed)
    args = {"in_channels": 1, "num_classes": 10}
    net = build_model(cfg.model, **args)
    metrics = train_classifier(
        net,
        subset,
        test,
        epochs=cfg.epochs,
        lr=0.1,
        batch_size=64,
        seed=cfg.seed,
        preprocessing=MNIST_PREPROCESSING,
        progress=run.progress,
    )
    metrics.update({"seed": cfg.seed, "test_fraction": 0.2, "train_examples": len(subset)})
    path = save_checkpoint(
        run.out / "train",
        net,
        {
            "model": cfg.model,
            "model_args": args,
            "input_shape": [1, 28, 28],
            "num_classes": 10,
            "labels": None,
            "preprocessing": MNIST_PREPROCESSING,
            "data": str(run.out / "data" / "train_subset.npz"),
            "metrics": metrics,
        },
    )
    run.facts.update(
        checkpoint=str(path),
        float_accuracy=metrics["test_accuracy"],
        parameters=sum(p.numel() for p in net.parameters()),
    )
    acc = 100 * metrics["test_accuracy"]
    return f"{cfg.model}, {len(subset)} images × {cfg.epochs} epoch: test accuracy {acc:.2f}%"


def step_compress(run: DemoRun) -> str:
    cfg = run.cfg
    if cfg.compress == "none":
        run.facts["compressed_checkpoint"] = run.facts["checkpoint"]
        return "skipped (--compress none)"
    from edgefl.ghost import GhostSettings
    from edgefl.methods import compress_checkpoint

    ghost = GhostSettings(
        target_mean_bits=cfg.target_bits, bit_range=(2, 8), epochs=cfg.compress_epochs, seed=cfg.seed
    ).check()
    result = compress_checkpoint(
        "ghost",
        run.facts["checkpoint"],
        run.out / "compressed",
        ghost,
        str(run.out / "data" / "train_subset.npz"),
        run.progress,
    )
    t = result["totals"]
    # GHOST splits the 6,000-image subset again for its own test figures; score the compressed model
    # on the held-out test split the float model was scored on, so the two accuracies compare.
    accuracy = _held_out_accuracy(result["checkpoint"], run)
    layers = [dict(r, name=r.get("layer", r.get("name"))) for r in result["layers"]]
    keys = ("mean_bits", "size_bytes", "size_bytes_ref", "size_ratio", "bops", "bops_ref", "bops_ratio")
    summary = {k: t[k] for k in keys if k in t}
    summary.update(float_accuracy=run.facts["float_accuracy"], compressed_accuracy=accuracy)
    (run.out / "compression.json").write_text(
        json.dumps({"method": "ghost", "layers": layers, "summary": summary}, indent=1)
    )
    run.facts.update(
        compressed_checkpoint=str(result["checkpoint"]),
        compressed_accuracy=accuracy,
        bops_ratio=t.get("bops_ratio"),
        mean_bits=t.get("mean_bits"),
    )
    return (
        f"GHOST {t['mean_bits']:.2f} mean bits, BOPs {t['bops_ratio']:.1f}× fewer, "
        f"test accuracy {100 * accuracy:.2f}%"
    )


def _held_out_accuracy(checkpoint, run: DemoRun) -> float:
    from edgefl.checkpoint import load_checkpoint
    from edgefl.data import MNIST_PREPROCESSING, load_mnist, train_test_split
    from edgefl.train import evaluate

    _, test = train_test_split(load_mnist(), 0.2, run.cfg.seed)
    return float(evaluate(load_checkpoint(checkpoint).model, test, MNIST_PREPROCESSING)["accuracy"])


def step_export(run: DemoRun) -> str:
    from edgefl.export.pipeline import ExportRequest, export_checkpoint

    quantized = run.cfg.compress != "none"
    # TX2: a quantized model runs as Q/DQ ONNX on onnxruntime (its GPU has no fast INT8); a float
    # model is prepared for the on-device TensorRT build.
    precision, fmt = ("int8", "onnx") if quantized else ("fp32", "tensorrt")
    result = export_checkpoint(
        ExportRequest(
            Path(run.facts["compressed_checkpoint"]),
            PROFILE,
            precision,
            fmt,
            run.out / "bundle",
            parity_samples=500,
        ),
        run.progress,
    )
    parity = result.manifest.get("parity") or {}
    checks = [v for v in parity.values() if isinstance(v, dict)]
    agree = min((c.get("top1_agreement", 1.0) for c in checks), default=None)
    run.facts.update(
        bundle=str(result.bundle_dir),
        opset=result.manifest.get("opset"),
        export_precision=f"{precision}/{fmt}",
        top1_agreement=agree,
    )
    shown = "—" if agree is None else f"{100 * agree:.2f} %"
    return f"opset {result.manifest.get('opset')}, {precision} {fmt}, parity top-1 agreement {shown}"


def step_latency(run: DemoRun) -> str:
    from edgefl.runtime.engine import open_engine

    engine = open_engine(run.facts["bundle"], "onnxruntime")
    try:
        spec = engine.manifest["inputs"][0]
        x = np.random.default_rng(0).random([1] + list(spec["shape"][1:]), dtype=np.float32)
        feed = {spec["name"]: x}
        for _ in range(20):
            engine.infer(feed)
        samples = []
        for _ in range(run.cfg.latency_runs):
            t0 = time.perf_counter()
            engine.infer(feed)
            samples.append(1000.0 * (time.perf_counter() - t0))
    finally:
        engine.close()
    p50, p95 = (float(np.percentile(samples, q)) for q in (50, 95))
    (run.out / "latency.json").write_text(
        json.dumps(
            {
                "engine": "onnxruntime (this machine's CPU)",
                "batch": 1,
                "runs": len(samples),
                "warmup": 20,
                "p50_ms": round(p50, 4),
                "p95_ms": round(p95, 4),
                "samples_ms": samples,
            }
        )
    )
    run.facts.update(latency_p50_ms=round(p50, 3), latency_p95_ms=round(p95, 3))
    return f"p50 {p50:.3f} ms, p95 {p95:.3f} ms (batch 1, onnxruntime on this machine)"


def step_pack(run: DemoRun) -> str:
    from edgefl.data import load_mnist
    from edgefl.pack import pack_agent

    d = load_mnist()
    local = run.out / "data" / "device_local.npz"
    np.savez(local, x=d.x[:256], y=d.y[:256])
    result = pack_agent(
        PROFILE,
        run.facts["bundle"],
        run.out / "agent.tar.gz",
        federation="demo",
        client_id="tx2-0",
        data=local,
    )
    run.facts.update(pack=str(result.path), pack_bytes=result.size_bytes)
    return f"{result.path.name}: {result.size_bytes / 1024:.0f} KiB, pins " + " ".join(
        f"{k}{v}" for k, v in result.pins.items()
    )


def step_simulate(run: DemoRun) -> str:
    from edgefl.sim.simulate import SimConfig, simulate
    from edgefl.sim.summary import start_note

    cfg = run.cfg
    # In orbit the camera is out of focus (a 5×5 blur the model never saw), so the deployed model does
    # worse on what the satellites see. They start from the deployed (compressed) model and federate
    # its head on their own defocused images; the target: ten points above the deployed model. It is
    # scored on all 2,000 held-out images, sharp and defocused, so its figures compare with the
    # compression step's (the same images, in torch).
    sim = SimConfig(
        satellites=cfg.satellites,
        planes=cfg.planes or next(p for p in (3, 2, 1) if cfg.satellites % p == 0),
        duration_s=cfg.hours * 3600.0,
        speedup=cfg.speedup,
        features=run.facts["bundle"],
        init="bundle",
        sensor="defocus",
        broker_url=cfg.broker_url,
        seed=cfg.seed,
        target_accuracy=None,
        target_gain=0.10,
        max_per_satellite=500,
        max_test=0,
        train={"epochs": 2, "lr": 0.01, "batch_size": 32},
    )
    doc = simulate(sim, run.out, progress=run.progress)
    target = doc["target_accuracy"]
    parts = [start_note(doc)]
    for mode, r in doc["runs"].items():
        t = r["time_to_target_s"]
        run.facts[f"{mode}_final_accuracy"] = r["final_accuracy"]
        run.facts[f"{mode}_hours_to_target"] = None if t is None else round(t / 3600.0, 2)
        run.facts[f"{mode}_versions"] = r["versions"]
        start = 100 * (r["history"][0]["accuracy"] if r["history"] else 0)
        end = 100 * (r["final_accuracy"] or 0)
        when = f"not reached in {cfg.hours:g} h" if t is None else f"reached at {t / 3600:.1f} h"
        versions = f"{r['versions']} version" + ("" if r["versions"] == 1 else "s")
        parts.append(f"{mode}: {versions}, {start:.1f} % → {end:.1f} %, target {when}.")
    run.facts["federation_target"] = target
    run.facts["deployed_accuracy_in_orbit"] = doc["start"]["accuracy"]
    run.facts["deployed_accuracy_on_ground"] = doc["start"].get("accuracy_on_ground")
    head = f"{len(doc['satellites'])} satellites, {cfg.hours:g} h simulated in {doc['wall_s']} s."
    return " ".join([head, *(p for p in parts if p)])


STEPS: list[tuple[str, Callable[[DemoRun], str]]] = [
    ("train", step_train),
    ("compress", step_compress),
    ("export", step_export),
    ("latency", step_latency),
    ("pack", step_pack),
    ("simulate", step_simulate),
]


def run_demo(cfg: DemoConfig, out: str | Path, progress=None) -> dict:
    """Run every step, write RUN_DIR/run.json and RUN_DIR/report.html.

    Args:
        cfg: demo settings.
        out: run directory (created; must be empty or absent).
        progress: an ``edgefl.progress`` object (None = silent).

    Returns:
        run.json's content (steps with wall times and results, summary figures, ``wall_s`` their total)
        and the report's path and seconds (after run.json was written, so not in it).
    """
    from edgefl.progress import NullProgress
    from edgefl.report import render_report

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise EdgeflError(f"{out} is not empty — pass a new --out directory")
    (out / "data").mkdir(parents=True, exist_ok=True)
    run = DemoRun(cfg, out, progress or NullProgress())
    overall = run.progress.task("edgefl demo", len(STEPS) + 1)
    for name, step in STEPS:
        overall.update(step=name)
        t0 = time.perf_counter()
        detail = step(run)
        run.steps.append({"name": name, "seconds": round(time.perf_counter() - t0, 1), "detail": detail})
        overall.advance(1)
        doc = _write_run(run)
    t0 = time.perf_counter()
    overall.update(step="report")
    page = render_report(out, title="edgefl demo: from MNIST to a constellation")
    overall.advance(1)
    return dict(doc, report=str(page), report_seconds=round(time.perf_counter() - t0, 1))


def _write_run(run: DemoRun) -> dict:
    """run.json: the steps so far and ``wall_s``, their total (the one figure the report and the terminal
    show)."""
    doc = {
        "title": "edgefl demo: from MNIST to a constellation",
        "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "wall_s": round(sum(s["seconds"] for s in run.steps), 1),
        "config": asdict(run.cfg),
        "steps": run.steps,
        "summary": dict(run.facts),
    }
    (run.out / "run.json").write_text(json.dumps(doc, indent=1))
    return doc
