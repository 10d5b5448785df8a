"""A GHOST checkpoint exports through `edgefl export` with Q/DQ nodes and its real per-layer bits, and
onnxruntime agrees with the fake-quant torch model."""

import json

import numpy as np
import pytest
import torch

from edgefl.checkpoint import load_checkpoint, save_checkpoint
from edgefl.ghost import GhostSettings
from edgefl.ghost.student import ghost_state, quantized_twin
from edgefl.data import ArrayData, load_dataset, normalize, train_test_split
from edgefl.models import build_model

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from edgefl.export.pipeline import ExportRequest, export_checkpoint  # noqa: E402

PREP = {"scale": 1 / 255, "mean": [0.5], "std": [0.5]}


def _data(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.uniform(0, 0.3, (n, 1, 12, 12)).astype(np.float32)
    for i, label in enumerate(y):
        r, c = rng.integers(0, 4) + (7 if label else 1), rng.integers(1, 9)
        x[i, 0, r : r + 3, c : c + 3] = 1.0
    return ArrayData(x, y.astype(np.int64))


BITS = {"conv1": 7, "layer1": 5, "layer2": 4, "layer3": 3}


@pytest.fixture(scope="module")
def ghost_checkpoint(tmp_path_factory):
    """A GHOST-structured ResNet-20 checkpoint (mixed bits, BN statistics set) without the training time."""
    root = tmp_path_factory.mktemp("ghost_export")
    data = _data(160, 7)
    np.savez(root / "d.npz", x=data.x, y=data.y)
    torch.manual_seed(0)
    teacher = build_model("resnet20", in_channels=1, num_classes=2)
    names = [n for n, m in teacher.named_modules() if isinstance(m, torch.nn.Conv2d)]
    bits = {n: BITS[n.split(".")[0]] for n in names}
    student = quantized_twin(teacher, bits).train()
    with torch.no_grad():
        student(torch.from_numpy(normalize(data.x, PREP)))
    student.eval()
    config = {
        "model": "resnet20",
        "model_args": {"in_channels": 1, "num_classes": 2},
        "input_shape": [1, 12, 12],
        "num_classes": 2,
        "preprocessing": PREP,
        "data": str(root / "d.npz"),
        "compression": ghost_state(bits, None, GhostSettings()),
    }
    save_checkpoint(root / "ghost", student, config)
    return root, {"bits": bits}


def test_ghost_bundle_has_qdq_real_bits_and_matches_torch(ghost_checkpoint):
    root, summary = ghost_checkpoint
    result = export_checkpoint(
        ExportRequest(
            checkpoint=root / "ghost",
            profile="jetson-orin-nx",
            precision="int8",
            format="onnx",
            out=root / "bundle",
            parity_samples=64,
            calib_samples=16,
        )
    )
    proto = onnx.load(str(result.bundle_dir / "model.onnx"))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("DequantizeLinear") >= 19 and "QuantizeLinear" in ops and "BatchNormalization" not in ops
    meta = {p.key: p.value for p in proto.metadata_props}
    bits = summary["bits"]
    assert meta["edgefl.bits.conv1"] == f"w{bits['conv1']}a32"
    assert meta["edgefl.bits.layer1.0.conv2"] == f"w{bits['layer1.0.conv2']}a{bits['layer1.0.conv1']}"
    manifest = json.loads((result.bundle_dir / "manifest.json").read_text())
    assert manifest["compression"] is not None

    data, _ = load_dataset(str(root / "d.npz"))
    _, test = train_test_split(data, 0.25, 0)
    x = normalize(test.x, PREP)
    sess = ort.InferenceSession(str(result.bundle_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ort_logits = np.concatenate([sess.run(["logits"], {name: x[i : i + 1]})[0] for i in range(len(x))])
    model = load_checkpoint(root / "ghost").model
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x)).numpy()
    agree = float((ort_logits.argmax(1) == torch_logits.argmax(1)).mean())
    assert agree >= 0.95
