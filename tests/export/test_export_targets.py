"""Other targets and precisions: Orin opset 20, INT8 on onnxruntime, TensorRT preparation, refusals,
parity failures, dynamic batch, and a quantization-aware checkpoint from edgefl.compress."""

import json
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgefl.cli.app import main
from edgefl.errors import EdgeflError
from edgefl.export import pipeline
from edgefl.export.graph_checks import max_opset
from edgefl.export.pipeline import ExportRequest, export_checkpoint


def _export(checkpoint, out, profile="jetson-tx2", precision="fp32", fmt="onnx", **kw):
    kw.setdefault("parity_samples", 200)
    return export_checkpoint(ExportRequest(checkpoint, profile, precision, fmt, out, **kw))


def test_orin_gets_opset_20(resnet20_checkpoint, tmp_path):
    result = _export(resnet20_checkpoint, tmp_path / "orin", profile="jetson-agx-orin")
    model = onnx.load(str(tmp_path / "orin" / "model.onnx"))
    assert max_opset(model) == 20 and result.manifest["opset"] == 20 and model.ir_version == 9
    assert result.manifest["parity"]["fp32"]["max_abs_diff"] < 1e-4


def test_int8_for_onnxruntime_on_tx2(small_cnn_checkpoint, tmp_path, python36, mnist_test_inputs):
    result = _export(small_cnn_checkpoint, tmp_path / "int8", precision="int8", parity_samples=500)
    bundle = tmp_path / "int8"
    model = onnx.load(str(bundle / "model.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert max_opset(model) == 13 and ops.count("QuantizeLinear") >= 4 and "DequantizeLinear" in ops
    parity = result.manifest["parity"]["int8"]
    assert parity["gated"] and parity["passed"] and parity["samples"] == 500
    assert parity["top1_agreement"] >= 0.97
    assert result.manifest["parity_info"]["int8_host_kernels"]["gated"] is False  # reported only
    calib = np.load(str(bundle / "calib.npy"), allow_pickle=False)
    assert calib.shape == (256, 1, 28, 28) and calib.dtype == np.float32
    assert "calib.npy" in result.manifest["files"]
    assert result.manifest["compression"]["quantized_by"] == "onnxruntime static QDQ"
    # the edge stack runs the Q/DQ graph: onnxruntime 1.10 on Python 3.6 matches this machine's onnxruntime
    x = mnist_test_inputs[:64]
    np.save(str(tmp_path / "x.npy"), x, allow_pickle=False)
    proc = subprocess.run(
        [
            python36,
            "-c",
            QDQ_SCRIPT,
            str(bundle / "model.onnx"),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    host = ort.InferenceSession(str(bundle / "model.onnx"), options, providers=["CPUExecutionProvider"])
    expected = np.concatenate([host.run(["logits"], {"input": x[i : i + 1]})[0] for i in range(len(x))])
    edge = np.load(str(tmp_path / "y.npy"))
    assert np.abs(edge - expected).max() < 1e-3  # same Q/DQ semantics, float rounding only


QDQ_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.concatenate([s.run(["logits"], {"input": x[i:i + 1]})[0] for i in range(len(x))]))
"""


def test_tensorrt_without_tensorrt_prepares_the_on_device_build(resnet20_checkpoint, tmp_path, capsys):
    code = main(
        [
            "export",
            str(resnet20_checkpoint),
            "--profile",
            "jetson-tx2",
            "--precision",
            "fp16",
            "--format",
            "tensorrt",
            "--out",
            str(tmp_path / "trt"),
            "--parity-samples",
            "64",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "the device builds its own engine (the tensorrt Python module is not installed" in " ".join(
        captured.err.split()
    )
    manifest = json.loads((tmp_path / "trt" / "manifest.json").read_text())
    engine = manifest["engine"]
    assert engine["build_on_device"] is True and engine["precision"] == "fp16"
    assert engine["expected_tensorrt"] == "8.2" and engine["workspace_mb"] == 1024
    assert engine["batch"] == {"min": 1, "opt": 1, "max": 1}
    assert set(manifest["parity"]) == {
        "fp32",
        "fp16",
    }  # fp16 emulated in torch: the engine runs on the device
    assert manifest["verification"]["tensorrt_run"] is False


def test_int8_tensorrt_on_tx2_is_refused_in_one_line(resnet20_checkpoint, tmp_path, capsys):
    code = main(
        [
            "export",
            str(resnet20_checkpoint),
            "--profile",
            "jetson-tx2",
            "--precision",
            "int8",
            "--format",
            "tensorrt",
            "--out",
            str(tmp_path / "nope"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "refused for jetson-tx2" in err and "--precision fp16" in err
    assert not (tmp_path / "nope").exists()


def test_failed_parity_fails_loudly_and_publishes_nothing(resnet20_checkpoint, tmp_path, monkeypatch):
    """A broken export form (classifier bias shifted) must not produce a bundle."""
    real = pipeline.prepare_for_export

    def broken(model):
        model = real(model)
        with torch.no_grad():
            model.classifier.bias.add_(0.01)
        return model

    monkeypatch.setattr(pipeline, "prepare_for_export", broken)
    with pytest.raises(EdgeflError, match="parity check failed .*max abs diff"):
        _export(resnet20_checkpoint, tmp_path / "bad", parity_samples=32)
    assert list(tmp_path.iterdir()) == []  # no bundle, no staging left behind


def test_dynamic_batch(resnet20_checkpoint, tmp_path, mnist_test_inputs):
    result = _export(
        resnet20_checkpoint,
        tmp_path / "dyn",
        profile="jetson-xavier-nx",
        batch=8,
        dynamic_batch=True,
        parity_samples=64,
    )
    assert result.manifest["inputs"][0]["shape"] == ["batch", 1, 28, 28]
    session = ort.InferenceSession(str(tmp_path / "dyn" / "model.onnx"))
    logits, feats = session.run(None, {"input": mnist_test_inputs[:7]})
    assert logits.shape == (7, 10) and feats.shape == (7, 64)


def test_existing_non_bundle_directory_is_not_overwritten(resnet20_checkpoint, tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(EdgeflError, match="not an edgefl bundle"):
        _export(resnet20_checkpoint, tmp_path / "precious", parity_samples=16)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_quantization_aware_checkpoint_exports_its_own_qdq(
    small_cnn_checkpoint, tmp_path, mnist_test_inputs, save_classifier_checkpoint
):
    """A compressed checkpoint (8-bit weights and activations) exports Q/DQ pairs, not re-quantized."""
    from edgefl.checkpoint import load_checkpoint
    from edgefl.compress.qmodules import calibrate_activations, model_quant_specs, quantize_model
    from edgefl.compress.restore import compression_state

    float_checkpoint = load_checkpoint(small_cnn_checkpoint)
    model = float_checkpoint.model
    weight = {"kind": "symmetric", "bits": 8, "per_channel": True, "method": "max"}
    first = next(n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d))
    specs = {
        name: {"w": weight, "a": {"kind": "range", "bits": 8, "signed": name == first}}
        for name, m in model.named_modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    }
    quantize_model(model, specs)
    calibrate_activations(model, [torch.from_numpy(mnist_test_inputs[-256:])])
    model.eval()
    state = compression_state("uniform", None, model_quant_specs(model))
    path = save_classifier_checkpoint(
        tmp_path / "qck",
        model,
        compression=state,
        name="small_cnn",
        model_args=float_checkpoint.config["model_args"],
    )
    with pytest.raises(EdgeflError, match="checkpoint is quantized"):
        _export(path, tmp_path / "q-fp32", parity_samples=16)
    result = _export(path, tmp_path / "q-int8", precision="int8", parity_samples=200)
    assert result.settings.calibration == "none"  # Q/DQ came from the checkpoint
    assert result.manifest["compression"]["method"] == "uniform"
    assert result.manifest["compression"]["quantized_by"].startswith("checkpoint")
    assert result.manifest["parity"]["int8"]["top1_agreement"] >= 0.97
    model_onnx = onnx.load(str(tmp_path / "q-int8" / "model.onnx"))
    assert max_opset(model_onnx) == 13
    assert any(p.key.startswith("edgefl.bits.") for p in model_onnx.metadata_props)


def test_int8_tensorrt_on_orin_ships_calibration_inputs_for_the_device(small_cnn_checkpoint, tmp_path):
    result = _export(
        small_cnn_checkpoint,
        tmp_path / "orin-int8",
        profile="jetson-agx-orin",
        precision="int8",
        fmt="tensorrt",
        parity_samples=64,
        batch=4,
        dynamic_batch=True,
    )
    engine = result.manifest["engine"]
    assert engine["build_on_device"] is True and engine["precision"] == "int8"
    assert engine["calibration"] == "calib.npy" and engine["calibration_cache"] == "calib.cache"
    assert engine["batch"] == {"min": 1, "opt": 4, "max": 4} and engine["expected_tensorrt"] == "10.3"
    assert result.settings.calibration == "trt-entropy"
    assert max_opset(onnx.load(str(tmp_path / "orin-int8" / "model.onnx"))) == 20
    calib = np.load(str(tmp_path / "orin-int8" / "calib.npy"), allow_pickle=False)
    assert calib.shape[1:] == (1, 28, 28) and "calib.npy" in result.manifest["files"]


def test_pruned_checkpoint_exports_its_smaller_shapes(
    resnet20_checkpoint, tmp_path, save_classifier_checkpoint
):
    """Filters removed by edgefl.compress (residual stream and block interiors) are gone from the ONNX,
    and the re-padded option-A shortcuts still fold to TensorRT-8.2-safe weights."""
    from edgefl.checkpoint import load_checkpoint
    from edgefl.compress.prune import apply_plan, model_layout
    from edgefl.compress.restore import compression_state
    from edgefl.export.graph_checks import trt8_int64_hazards

    float_checkpoint = load_checkpoint(resnet20_checkpoint)
    model = load_checkpoint(resnet20_checkpoint).model
    layout = model_layout(model)
    plan = {
        "layout": layout.name,
        "pruned": {"res": [0, 20, 40, 63], "layer1.0.mid": [1, 2], "layer3.2.mid": [5]},
    }
    apply_plan(model, plan)
    path = save_classifier_checkpoint(
        tmp_path / "pruned",
        model,
        compression=compression_state("magnitude", plan, {}),
        model_args=float_checkpoint.config["model_args"],
    )
    result = _export(path, tmp_path / "bundle", parity_samples=200)
    proto = onnx.load(str(tmp_path / "bundle" / "model.onnx"))
    onnx_filters = sorted(int(i.dims[0]) for i in proto.graph.initializer if len(i.dims) == 4)
    torch_filters = sorted(m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    unpruned = sorted(
        m.out_channels for m in float_checkpoint.model.modules() if isinstance(m, torch.nn.Conv2d)
    )
    assert onnx_filters == torch_filters and sum(onnx_filters) < sum(unpruned)
    assert result.manifest["outputs"][1]["shape"] == [1, 60]  # 64 features - 4 pruned
    assert result.manifest["parity"]["fp32"]["max_abs_diff"] < 1e-4
    assert trt8_int64_hazards(proto) == []
