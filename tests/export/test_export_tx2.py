"""The bar for jetson-tx2: ResNet-20 -> opset 13, full checker, parity on the shipped MNIST test split,
onnxruntime 1.10 under Python 3.6 gives the same outputs, manifest hashes catch corruption."""

import json
import shutil
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgefl.checkpoint import load_checkpoint
from edgefl.runtime.bundle import read_manifest
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.export.graph_checks import check_model_full, max_opset, trt8_int64_hazards

MANIFEST_KEYS = {
    "format",
    "version",
    "edgefl_version",
    "model",
    "model_file",
    "inputs",
    "outputs",
    "preprocessing",
    "labels",
    "profile",
    "precision",
    "opset",
    "compression",
    "parity",
    "files",
    "head",
}


def test_file_says_opset_13_and_passes_full_checker(tx2_bundle):
    path = tx2_bundle.bundle_dir / "model.onnx"
    model = onnx.load(str(path))
    assert max_opset(model) == 13 and tx2_bundle.manifest["opset"] == 13
    assert model.ir_version == 7
    check_model_full(path)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits", "features"]


def test_graph_is_clean_for_tensorrt_8_2(tx2_bundle):
    model = onnx.load(str(tx2_bundle.bundle_dir / "model.onnx"))
    assert trt8_int64_hazards(model) == []
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Constant", "Identity", "Shape", "ConstantOfShape"}
    assert "BatchNormalization" not in ops  # folded into the convolutions


def test_parity_on_the_whole_test_split(tx2_bundle):
    fp32 = tx2_bundle.manifest["parity"]["fp32"]
    assert fp32["samples"] == 2000  # the shipped MNIST test split (train_test_split seed 0)
    assert fp32["max_abs_diff"] < 1e-4
    assert fp32["top1_agreement"] == 1.0 and fp32["passed"]


def test_independent_recheck_against_the_checkpoint(tx2_bundle, resnet20_checkpoint, mnist_test_inputs):
    """Not the oracle: onnxruntime directly vs the checkpoint model reloaded from disk."""
    x = mnist_test_inputs[:200]
    session = ort.InferenceSession(
        str(tx2_bundle.bundle_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    logits = np.concatenate([session.run(["logits"], {"input": x[i : i + 1]})[0] for i in range(len(x))])
    model = load_checkpoint(resnet20_checkpoint).model
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.abs(logits - expected).max() < 1e-4
    assert (logits.argmax(1) == expected.argmax(1)).all()
    assert len(set(expected.argmax(1).tolist())) >= 5  # real decisions, not a constant prediction


def test_manifest_contract(tx2_bundle):
    manifest = json.loads((tx2_bundle.bundle_dir / "manifest.json").read_text())
    assert MANIFEST_KEYS <= set(manifest)
    assert manifest["format"] == "edgefl.bundle" and manifest["version"] == 1
    assert manifest["inputs"] == [{"name": "input", "shape": [1, 1, 28, 28], "dtype": "float32"}]
    assert [o["name"] for o in manifest["outputs"]] == ["logits", "features"]
    assert manifest["outputs"][1]["shape"] == [1, 64]
    assert manifest["profile"]["name"] == "jetson-tx2" and manifest["profile"]["tensorrt"] == "8.2"
    assert manifest["preprocessing"]["mean"] == [0.1307] and manifest["labels"][3] == "3"
    assert set(manifest["files"]) == {"model.onnx", "head.safetensors"}
    assert manifest["engine"] is None and manifest["compression"] is None


def test_head_holds_the_classifier(tx2_bundle, resnet20_checkpoint):
    from safetensors.numpy import load_file

    head = load_file(str(tx2_bundle.bundle_dir / "head.safetensors"))
    classifier = load_checkpoint(resnet20_checkpoint).model.classifier
    np.testing.assert_array_equal(head["weight"], classifier.weight.detach().numpy())
    np.testing.assert_array_equal(head["bias"], classifier.bias.detach().numpy())


def test_sha256_verified_and_corruption_detected(tx2_bundle, tmp_path):
    read_manifest(str(tx2_bundle.bundle_dir))
    copy = tmp_path / "bundle"
    shutil.copytree(tx2_bundle.bundle_dir, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(EdgeRuntimeError, match="model.onnx fails its sha256"):
        read_manifest(str(copy))
    (copy / "head.safetensors").unlink()
    shutil.copy(tx2_bundle.bundle_dir / "model.onnx", copy / "model.onnx")
    with pytest.raises(EdgeRuntimeError, match="head.safetensors is missing"):
        read_manifest(str(copy))


EDGE_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.intra_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
out = [s.run(["logits", "features"], {"input": x[i:i + 1]}) for i in range(len(x))]
np.save(sys.argv[3], np.concatenate([o[0] for o in out]))
np.save(sys.argv[4], np.concatenate([o[1] for o in out]))
sys.stdout.write("%s %s" % (sys.version_info[:2], ort.__version__))
"""


def test_loads_in_onnxruntime_1_10_under_python_3_6(
    tx2_bundle, resnet20_checkpoint, mnist_test_inputs, python36, tmp_path
):
    x = mnist_test_inputs[:100]
    np.save(str(tmp_path / "x.npy"), x, allow_pickle=False)
    proc = subprocess.run(
        [
            python36,
            "-c",
            EDGE_SCRIPT,
            str(tx2_bundle.bundle_dir / "model.onnx"),
            str(tmp_path / "x.npy"),
            str(tmp_path / "logits.npy"),
            str(tmp_path / "feats.npy"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().startswith("(3, 6) 1.10")
    logits, feats = np.load(str(tmp_path / "logits.npy")), np.load(str(tmp_path / "feats.npy"))
    model = load_checkpoint(resnet20_checkpoint).model
    with torch.no_grad():
        expected_feats = model.features(torch.from_numpy(x))
        expected = model.classifier(expected_feats).numpy()
    assert np.abs(logits - expected).max() < 1e-4
    assert np.abs(feats - expected_feats.numpy()).max() < 1e-4
    assert (logits.argmax(1) == expected.argmax(1)).all()
