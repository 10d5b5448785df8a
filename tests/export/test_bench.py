"""`edgefl bench`: the latency summary by hand, and the command on a real bundle (no timing asserts)."""

import json

import pytest

from edgefl.cli.app import main
from edgefl.errors import EdgeflError
from edgefl.export.bench import bench_input, latency_summary


def test_latency_summary_by_hand():
    summary = latency_summary([0.001, 0.002, 0.003, 0.004, 0.010], batch=4)
    assert summary["p50_ms"] == pytest.approx(3.0)
    assert summary["p95_ms"] == pytest.approx(8.8)  # numpy linear interpolation: 4 + 0.8 * (10 - 4)
    assert summary["mean_ms"] == pytest.approx(4.0)
    assert summary["throughput_per_s"] == pytest.approx(20 / 0.020)
    with pytest.raises(EdgeflError):
        latency_summary([], batch=1)


def test_static_batch_bundle_refuses_another_batch():
    manifest = {"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "dtype": "float32"}]}
    assert bench_input(manifest, None).shape == (1, 1, 28, 28)
    with pytest.raises(EdgeflError, match="static batch of 1"):
        bench_input(manifest, 32)
    dynamic = {"inputs": [{"name": "input", "shape": ["batch", 1, 28, 28], "dtype": "float32"}]}
    assert bench_input(dynamic, 32).shape == (32, 1, 28, 28)


def test_bench_command_on_the_tx2_bundle(tx2_bundle, capsys):
    code = main(["bench", str(tx2_bundle.bundle_dir), "--iterations", "5", "--warmup", "1", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["engine"] == "OnnxRuntimeEngine" and result["iterations"] == 5 and result["batch"] == 1
    assert result["backend"] == "onnxruntime" and result["backend_requested"] == "auto"  # what ran
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    assert result["profile"] == "jetson-tx2" and result["threads"] == 1


def test_bench_unavailable_backend_is_one_line(tx2_bundle, capsys):
    code = main(["bench", str(tx2_bundle.bundle_dir), "--backend", "tensorrt", "--iterations", "1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "tensorrt" in err
