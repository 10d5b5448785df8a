"""Models that are not in the zoo, through the console script: train --model FILE.py:build -> export for
jetson-tx2 (fp32). Each bundle is opset 13, passes the full checker and its parity, carries logits +
features and the model's own head, and runs in onnxruntime 1.10 under Python 3.6."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edgefl.data import load_mnist, train_test_split
from edgefl.export.graph_checks import check_model_full, max_opset

pytestmark = pytest.mark.slow  # two trainings through the console script (a few minutes on 2 cores)

EDGEFL = str(Path(sys.executable).with_name("edgefl"))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
# fixture file -> (head module, feature width at --model-arg width=8)
MODELS = {"mobilenet_hs.py": ("classifier.1", 64), "se_concat_net.py": ("fc", 32)}
IMAGES = 1000


def edgefl(*argv):
    return subprocess.run([EDGEFL, *map(str, argv)], capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def mnist_slice(mnist_npz):
    """1,000 shipped MNIST images as an .npz (what a user's own data looks like to edgefl)."""
    return mnist_npz(IMAGES)


@pytest.fixture(scope="module", params=sorted(MODELS))
def trained_and_exported(request, mnist_slice, tmp_path_factory):
    root = tmp_path_factory.mktemp(Path(request.param).stem)
    reference = f"{FIXTURES / request.param}:build"
    proc = edgefl("train", "--model", reference, "--model-arg", "width=8", "--data", mnist_slice,
                  "--epochs", "2", "--batch-size", "32", "--lr", "0.1", "--out", root / "ck", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = edgefl("export", root / "ck", "--profile", "jetson-tx2", "--out", root / "bundle", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return request.param, root / "ck", root / "bundle", json.loads(proc.stdout)["manifest"]


def test_opset_13_full_checker_and_parity(trained_and_exported):
    name, _ck, bundle, manifest = trained_and_exported
    model = onnx.load(str(bundle / "model.onnx"))
    assert max_opset(model) == 13 and manifest["opset"] == 13 and model.ir_version == 7
    check_model_full(bundle / "model.onnx")
    assert [o.name for o in model.graph.output] == ["logits", "features"]
    assert manifest["outputs"][1]["shape"] == [1, MODELS[name][1]]
    fp32 = manifest["parity"]["fp32"]
    assert fp32["passed"] and abs(fp32["samples"] - IMAGES // 5) <= 2 and fp32["max_abs_diff"] < 1e-4
    assert fp32["features_max_abs_diff"] < 1e-4 and fp32["top1_agreement"] == 1.0


def test_the_head_is_the_models_own_last_linear(trained_and_exported):
    from safetensors.numpy import load_file

    from edgefl.checkpoint import load_checkpoint

    name, ck, bundle, manifest = trained_and_exported
    net = load_checkpoint(ck).model
    head = net.get_submodule(MODELS[name][0])
    saved = load_file(str(bundle / "head.safetensors"))
    np.testing.assert_array_equal(saved["weight"], head.weight.detach().numpy())
    np.testing.assert_array_equal(saved["bias"], head.bias.detach().numpy())
    assert manifest["model"] == f"{FIXTURES / name}:build"


EDGE_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
out = [s.run(["logits", "features"], {"input": x[i:i + 1]}) for i in range(len(x))]
np.save(sys.argv[3], np.concatenate([o[0] for o in out]))
np.save(sys.argv[4], np.concatenate([o[1] for o in out]))
sys.stdout.write("%s %s" % (sys.version_info[:2], ort.__version__))
"""


def test_runs_in_onnxruntime_1_10_under_python_3_6(trained_and_exported, python36, tmp_path):
    from edgefl.checkpoint import load_checkpoint
    from edgefl.data import normalize

    name, ck, bundle, manifest = trained_and_exported
    _, test = train_test_split(load_mnist(), 0.2, seed=0)
    x = normalize(test.x[:64], manifest["preprocessing"])
    np.save(str(tmp_path / "x.npy"), x, allow_pickle=False)
    outs = [tmp_path / "logits.npy", tmp_path / "feats.npy"]
    proc = subprocess.run(
        [python36, "-c", EDGE_SCRIPT, str(bundle / "model.onnx"), str(tmp_path / "x.npy"), *map(str, outs)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().startswith("(3, 6) 1.10")
    net = load_checkpoint(ck).model
    feats = []
    hook = net.get_submodule(MODELS[name][0]).register_forward_hook(
        lambda _m, args, _o: feats.append(args[0])
    )
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    hook.remove()
    assert np.abs(np.load(str(outs[0])) - expected).max() < 1e-4
    assert np.abs(np.load(str(outs[1])) - feats[0].numpy()).max() < 1e-4
    assert len(set(expected.argmax(1).tolist())) >= 3  # a trained model's decisions, not a constant
