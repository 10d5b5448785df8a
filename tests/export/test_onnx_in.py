"""ONNX in: `edgefl export model.onnx --profile P` through the installed console script.

The bar: an opset-17 export of a MobileNetV2-style model with HardSwish (tests/fixtures/models) is
re-targeted for jetson-tx2 with max |Δ| < 1e-4 against the original on 64 inputs, and runs in
onnxruntime 1.10 under Python 3.6. Bad files and samples: one line, exit 2, nothing written.
"""

import importlib.util
import io
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgefl.data import MNIST_PREPROCESSING, load_mnist, normalize, train_test_split
from edgefl.export.graph_checks import check_model_full, max_opset

EDGEFL = str(Path(sys.executable).with_name("edgefl"))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def fixture_model(file, **kw):
    spec = importlib.util.spec_from_file_location(f"fixture_{file}", FIXTURES / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(**kw)


def onnx_file(model, path, opset, input_name="images", output_name="scores", dynamic=True):
    """A user's export: their own names, opset 17, dynamic batch, torch's TorchScript exporter."""
    buffer = io.BytesIO()
    axes = {input_name: {0: "N"}, output_name: {0: "N"}} if dynamic else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, 1, 28, 28),),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes=axes,
        )
    path.write_bytes(buffer.getvalue())
    return path


def edgefl(*argv, timeout=600):
    return subprocess.run(
        [EDGEFL, *map(str, argv)], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def mobilenet_onnx(tmp_path_factory):
    torch.manual_seed(0)
    net = fixture_model("mobilenet_hs.py")
    for m in net.modules():  # non-trivial BatchNorm statistics, so the fold and the rewrite both matter
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = onnx_file(net, tmp_path_factory.mktemp("onnx") / "mobilenet_hs.onnx", opset=17)
    assert max_opset(onnx.load(str(path))) == 17
    assert "HardSwish" in {n.op_type for n in onnx.load(str(path)).graph.node}
    return path


@pytest.fixture(scope="module")
def tx2_from_onnx(mobilenet_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "tx2"
    proc = edgefl("export", mobilenet_onnx, "--profile", "jetson-tx2", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(proc.stdout)["manifest"]


def run_rows(path, names, x):
    """Outputs of a batch-1 model over x, one row at a time."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    rows = [session.run(names, {feed: x[i : i + 1]}) for i in range(len(x))]
    return [np.concatenate([r[k] for r in rows]) for k in range(len(names))]


def inputs(n=64, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 1, 28, 28)).astype(np.float32)


def test_retargeted_for_tx2_matches_the_original_on_64_inputs(mobilenet_onnx, tx2_from_onnx):
    out, manifest = tx2_from_onnx
    model = onnx.load(str(out / "model.onnx"))
    assert max_opset(model) == 13 and manifest["opset"] == 13 and model.ir_version == 7
    check_model_full(out / "model.onnx")
    ops = {n.op_type for n in model.graph.node}
    assert "HardSwish" not in ops and "HardSigmoid" in ops
    assert manifest["verification"]["retarget"]["rewritten"] == {"HardSwish": 12}
    assert manifest["verification"]["samples"].startswith("generated: 64")
    fp32 = manifest["parity"]["fp32"]
    assert fp32["samples"] == 64 and fp32["runner"] == "ORT vs source ONNX" and fp32["max_abs_diff"] < 1e-4
    x = inputs()  # not the inputs the export used
    (expected,) = run_rows(mobilenet_onnx, ["scores"], x)
    logits, feats = run_rows(out / "model.onnx", ["logits", "features"], x)
    assert np.abs(logits - expected).max() < 1e-4
    assert feats.shape == (64, 128) and np.abs(expected).max() > 0.1  # real outputs, not zeros


def test_bundle_is_the_same_as_for_a_checkpoint(tx2_from_onnx):
    from safetensors.numpy import load_file

    from edgefl.runtime.bundle import read_manifest

    out, manifest = tx2_from_onnx
    assert read_manifest(str(out)) == manifest  # sealed, every file as recorded
    assert manifest["inputs"] == [{"name": "input", "shape": [1, 1, 28, 28], "dtype": "float32"}]
    assert [o["name"] for o in manifest["outputs"]] == ["logits", "features"]
    assert set(manifest["files"]) == {"model.onnx", "head.safetensors"}
    head = load_file(str(out / "head.safetensors"))
    logits, feats = run_rows(out / "model.onnx", ["logits", "features"], inputs(8))
    np.testing.assert_allclose(feats @ head["weight"].T + head["bias"], logits, atol=1e-5)


EDGE_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.concatenate([s.run(["logits"], {"input": x[i:i + 1]})[0] for i in range(len(x))]))
sys.stdout.write("%s %s" % (sys.version_info[:2], ort.__version__))
"""


def test_runs_in_onnxruntime_1_10_under_python_3_6(mobilenet_onnx, tx2_from_onnx, python36, tmp_path):
    out, _ = tx2_from_onnx
    x = inputs()
    np.save(str(tmp_path / "x.npy"), x, allow_pickle=False)
    proc = subprocess.run(
        [
            python36,
            "-c",
            EDGE_SCRIPT,
            str(out / "model.onnx"),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().startswith("(3, 6) 1.10")
    (expected,) = run_rows(mobilenet_onnx, ["scores"], x)
    assert np.abs(np.load(str(tmp_path / "y.npy")) - expected).max() < 1e-4


def assert_refused(proc, needle, out):
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.staging-*"))


def test_truncated_and_non_onnx_files_are_refused(mobilenet_onnx, tmp_path):
    data = mobilenet_onnx.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    assert_refused(
        edgefl("export", tmp_path / "cut.onnx", "--profile", "jetson-tx2", "--out", tmp_path / "b"),
        "cut.onnx is not an ONNX model",
        tmp_path / "b",
    )
    (tmp_path / "notes.onnx").write_text("this is a text file, not a model\n")
    assert_refused(
        edgefl("export", tmp_path / "notes.onnx", "--profile", "jetson-tx2", "--out", tmp_path / "b"),
        "notes.onnx is not an ONNX model",
        tmp_path / "b",
    )


def test_samples_of_the_wrong_shape_are_refused(mobilenet_onnx, tmp_path):
    np.save(str(tmp_path / "s.npy"), np.zeros((8, 3, 28, 28), np.float32))
    proc = edgefl(
        "export",
        mobilenet_onnx,
        "--profile",
        "jetson-tx2",
        "--samples",
        tmp_path / "s.npy",
        "--out",
        tmp_path / "b",
    )
    assert_refused(proc, "samples s.npy are 3×28×28 but mobilenet_hs.onnx takes 1×28×28", tmp_path / "b")


def test_an_op_with_no_rewrite_is_named(tmp_path):
    class Normed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.LayerNorm([28, 28])
            self.fc = torch.nn.Linear(28 * 28, 10)

        def forward(self, x):
            return self.fc(self.norm(x).flatten(1))

    path = onnx_file(Normed(), tmp_path / "normed.onnx", opset=17)
    assert "LayerNormalization" in {n.op_type for n in onnx.load(str(path)).graph.node}
    proc = edgefl("export", path, "--profile", "jetson-tx2", "--out", tmp_path / "b")
    assert_refused(proc, "op LayerNormalization (ONNX opset 17) has no form at opset 13", tmp_path / "b")


@pytest.fixture(scope="module")
def small_cnn_onnx(small_cnn_checkpoint, tmp_path_factory):
    """The trained SmallCNN of the checkpoint tests (clear margins), at opset 17 with a fixed batch."""
    from edgefl.checkpoint import load_checkpoint

    from edgefl.export.torch_export import exportable  # its 7→4 adaptive pooling as two MatMuls

    model = exportable(load_checkpoint(small_cnn_checkpoint).model)
    return onnx_file(model, tmp_path_factory.mktemp("onnx") / "small_cnn.onnx", 17, dynamic=False)


def mnist_samples(path, n=512):
    train, test = train_test_split(load_mnist(), 0.2, seed=0)
    x = normalize(np.concatenate([test.x[: n // 2], train.x[: n // 2]]), MNIST_PREPROCESSING)
    np.save(str(path), x.astype(np.float32), allow_pickle=False)
    return path


def test_int8_post_training_quantization_of_an_onnx_file(small_cnn_onnx, tmp_path):
    samples = mnist_samples(tmp_path / "mnist.npy")
    out = tmp_path / "int8"
    proc = edgefl(
        "export",
        small_cnn_onnx,
        "--profile",
        "jetson-orin-nano",
        "--precision",
        "int8",
        "--samples",
        samples,
        "--out",
        out,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads(proc.stdout)["manifest"]
    assert manifest["compression"]["quantized_by"] == "onnxruntime static QDQ"
    assert manifest["compression"]["qdq"]["quantize_linear"] > 0
    assert manifest["verification"]["calibration_samples"] == 256 and "calib.npy" in manifest["files"]
    assert manifest["parity"]["int8"]["passed"] and manifest["parity"]["int8"]["top1_agreement"] >= 0.97
    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_int8_needs_real_samples_and_stays_refused_for_tx2_tensorrt(small_cnn_onnx, tmp_path):
    out = tmp_path / "b"
    assert_refused(
        edgefl(
            "export", small_cnn_onnx, "--profile", "jetson-orin-nano", "--precision", "int8", "--out", out
        ),
        "needs real inputs — pass --samples",
        out,
    )
    samples = mnist_samples(tmp_path / "mnist.npy", 16)
    assert_refused(
        edgefl(
            "export",
            small_cnn_onnx,
            "--profile",
            "jetson-tx2",
            "--precision",
            "int8",
            "--format",
            "tensorrt",
            "--samples",
            samples,
            "--out",
            out,
        ),
        "refused for jetson-tx2",
        out,
    )


def test_a_bundles_own_model_onnx_goes_back_through_the_onnx_route(tmp_path):
    """An edgefl bundle's model.onnx has `features` as a graph output (its shape is in graph.output, not in
    value_info): the ONNX route reads it, finds the same head, quantizes it for onnxruntime and keeps the
    bundle's preprocessing — only from a manifest beside it that names this very file (name and sha256)."""
    from safetensors.numpy import load_file

    source = Path(__file__).resolve().parents[1] / "runtime" / "data" / "tiny_bundle"
    source_manifest = json.loads((source / "manifest.json").read_text())
    rng = np.random.RandomState(0)
    samples = tmp_path / "x.npy"
    np.save(str(samples), rng.standard_normal((64, 1, 4, 4)).astype(np.float32), allow_pickle=False)

    def export(onnx_path, out):
        proc = edgefl(
            "export",
            onnx_path,
            "--profile",
            "jetson-tx2",
            "--precision",
            "int8",
            "--samples",
            samples,
            "--out",
            tmp_path / out,
            "--json",
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)["manifest"]

    manifest = export(source / "model.onnx", "int8")
    out = tmp_path / "int8"
    assert [o["name"] for o in manifest["outputs"]] == ["logits", "features"]
    assert (
        manifest["preprocessing"]
        == source_manifest["preprocessing"]
        == {"scale": 1 / 255, "mean": [0.5], "std": [0.25]}
    )
    assert manifest["verification"]["source"]["preprocessing"] == "its bundle's manifest"
    before, after = load_file(str(source / "head.safetensors")), load_file(str(out / "head.safetensors"))
    assert sorted(after) == sorted(before)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], rtol=1e-6, atol=1e-7)
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}

    alone = tmp_path / "alone"  # the file without its bundle: nothing to say how inputs are normalised
    alone.mkdir()
    (alone / "model.onnx").write_bytes((source / "model.onnx").read_bytes())
    assert export(alone / "model.onnx", "alone-int8")["preprocessing"] is None
    from edgefl.runtime.bundle import write_document

    for case, sealed in (("other", False), ("resealed-other", True)):
        folder = tmp_path / case  # a manifest beside it that describes another file: unsealed, then sealed
        folder.mkdir()
        (folder / "model.onnx").write_bytes((source / "model.onnx").read_bytes())
        doc = {**source_manifest, "files": {**source_manifest["files"], "model.onnx": "0" * 64}}
        if sealed:
            write_document(str(folder), "bundle", doc)
        else:
            (folder / "manifest.json").write_text(json.dumps(doc))
        assert export(folder / "model.onnx", f"{case}-int8")["preprocessing"] is None
    declared = edgefl("export", alone / "model.onnx", "--profile", "jetson-tx2", "--mean", "0.3", "--std",
                      "0.4", "--out", tmp_path / "declared", "--json")  # a user's file: they say how
    assert declared.returncode == 0, declared.stderr[-3000:]
    manifest = json.loads(declared.stdout)["manifest"]
    assert manifest["preprocessing"] == {"scale": 1 / 255, "mean": [0.3], "std": [0.4]}
    assert manifest["verification"]["source"]["preprocessing"] == "--mean/--std"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--mean", "0.5"], "pass --mean and --std together"),
        (["--mean", "0.5,0.5", "--std", "0.2,0.2"], "--mean has 2 values; model.onnx takes 1-channel inputs"),
        (["--mean", "0.5", "--std", "0"], "not comma-separated finite numbers > 0"),
        (["--mean", "x", "--std", "1"], "not comma-separated finite numbers"),
    ],
)
def test_bad_mean_and_std_are_one_line(tmp_path, argv, needle):
    source = Path(__file__).resolve().parents[1] / "runtime" / "data" / "tiny_bundle" / "model.onnx"
    proc = edgefl("export", source, "--profile", "jetson-tx2", *argv, "--out", tmp_path / "b")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "b").exists()
