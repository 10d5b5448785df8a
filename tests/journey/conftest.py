"""Fixtures for journey tests: a small but complete run directory (real schedule, plausible histories)."""

import json
from pathlib import Path

import numpy as np
import pytest

from edgefl.runtime.bundle import hash_files, write_document
from edgefl.sim.orbit import KNOWN_STATIONS, walker_constellation
from edgefl.sim.schedule import schedule_from_orbits, write_schedule


def make_run_dir(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "sim").mkdir(parents=True)
    sched = schedule_from_orbits(
        walker_constellation(4, 2, 550, 97.6), [KNOWN_STATIONS["svalbard"], KNOWN_STATIONS["troll"]], 4 * 3600
    )
    write_schedule(sched, root / "sim" / "schedule.json")
    runs = {}
    for mode, step in (("sync", 2400.0), ("async", 900.0)):
        hist, acc, t, up = [], 0.5, 0.0, 0
        for v in range(8):
            hist.append({"version": v, "sim_time_s": t, "bytes_up": up, "bytes_down": 0, "accuracy": acc})
            t += step * (1 + 0.2 * rng.random())
            up += 4 * 90_000
            acc = min(0.97, acc + 0.06)
        events = [
            {"satellite": c.satellite, "kind": k, "sim_time_s": c.start_s + 30, "bytes": 90_000}
            for c in sched.contacts
            for k in ("download", "upload")
        ]
        runs[mode] = {
            "history": hist,
            "events": events,
            "final_accuracy": acc,
            "time_to_target_s": t / 2,
            "bytes_up": up,
            "bytes_down": 0,
            "updates_received": 28,
        }
    (root / "sim" / "simulation.json").write_text(
        json.dumps({"format": "edgefl.simulation", "version": 1, "target_accuracy": 0.9, "runs": runs})
    )
    layers = [
        {
            "name": f"conv{i}",
            "kind": "conv",
            "macs": 10_000 * (i + 1),
            "params": 100 * (i + 1),
            "w_bits": b,
            "a_bits": b,
            "bops": 10_000 * (i + 1) * b * b,
        }
        for i, b in enumerate((8, 4, 4, 2, 8))
    ]
    (root / "compression.json").write_text(
        json.dumps({"method": "ghost", "layers": layers, "summary": {"bops_ratio": 12.5}})
    )
    (root / "bundle").mkdir()
    (root / "bundle" / "model.onnx").write_bytes(b"not read by the report")
    write_document(
        str(root / "bundle"),
        "bundle",
        {
            "model": "small_cnn",
            "model_file": "model.onnx",
            "opset": 13,
            "precision": "fp32",
            "profile": {"name": "jetson-tx2"},
            "inputs": [{"name": "input", "shape": [1, 1, 28, 28]}],
            "parity": {"max_abs_diff": 1.2e-7, "cosine": 1.0, "top1_agreement": 1.0},
            "files": hash_files(str(root / "bundle"), ["model.onnx"]),
        },
    )
    samples = list(0.4 + 0.05 * rng.random(200))
    (root / "latency.json").write_text(
        json.dumps(
            {"engine": "onnxruntime", "batch": 1, "samples_ms": samples, "p50_ms": float(np.median(samples))}
        )
    )
    (root / "run.json").write_text(
        json.dumps(
            {
                "title": "edgefl demo",
                "steps": [{"name": "train", "seconds": 1.0}],
                "summary": {"accuracy": 0.97},
            }
        )
    )
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("run"))
