"""Models the zoo has never seen, through the console script: train --model FILE.py:build -> compress
ghost -> compress picpq -> export --profile jetson-tx2 (int8 Q/DQ) for each compressed checkpoint.

Each bundle is opset 13, passes the full ONNX checker and its parity, and runs in onnxruntime 1.10 under
Python 3.6 with the outputs of the checkpoint restored in torch (the recorded pruning plan replayed on a
freshly built model). What a method cannot take is named in its output: the odd fixture's grouped conv,
the channels its Conv1d mixes and the conv it never calls.
"""

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

# three trainings, six compressions and six exports: minutes on 2 idle cores, more under load (the
# module fixture of one model runs inside its first test, hence the longer timeout)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

EDGEFL = str(Path(sys.executable).with_name("edgefl"))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
MODELS = ("mobilenet_hs", "se_concat_net", "odd_net")
IMAGES = 300
GHOST = ["--epochs", "1", "--batch-size", "32"]
# the search scores two plans on each net (a random deformation and the identity); a mutated child would
# only run the same fitness path a third time (mutation is net-agnostic: tests/methods/test_picpq_search.py)
PICPQ = ["--population", "2", "--generations", "0", "--tau-hat", "2", "--ft-epochs", "1", "--qat-epochs", "1"]


def edgefl(*argv):
    argv = [EDGEFL, *map(str, argv)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False)


def ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def digits(mnist_npz):
    """300 shipped MNIST images as an .npz (a user's own data, as edgefl sees it)."""
    return mnist_npz(IMAGES)


@pytest.fixture(scope="module", params=MODELS)
def journey(request, digits, tmp_path_factory):
    """{"ghost"|"picpq": (checkpoint, bundle, compress output, manifest)} for one fixture model."""
    name, root = request.param, tmp_path_factory.mktemp(request.param)
    reference = f"{FIXTURES / name}.py:build"
    ok(edgefl("train", "--model", reference, "--model-arg", "width=8", "--data", digits, "--epochs", "1",
              "--batch-size", "32", "--lr", "0.1", "--out", root / "float", "--json"))
    runs = {}
    for method, options in (("ghost", GHOST), ("picpq", PICPQ)):
        # the odd model's GHOST run shows the human table; every other run is read as JSON
        as_json = ["--json"] if (name, method) != ("odd_net", "ghost") else []
        ck, bundle = root / method, root / f"{method}-bundle"
        out = ok(edgefl("compress", method, root / "float", *options, "--out", ck, *as_json)).stdout
        exported = ok(edgefl("export", ck, "--profile", "jetson-tx2", "--precision", "int8", "--out", bundle,
                             "--json"))
        runs[method] = (ck, bundle, out, json.loads(exported.stdout)["manifest"])
    return name, runs


def test_each_export_is_opset_13_checked_and_at_parity(journey):
    name, runs = journey
    for method, (_ck, bundle, _out, manifest) in runs.items():
        model = onnx.load(str(bundle / "model.onnx"))
        assert max_opset(model) == 13 and manifest["opset"] == 13, (name, method)
        check_model_full(bundle / "model.onnx")
        assert [o.name for o in model.graph.output] == ["logits", "features"]
        assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)  # Q/DQ, not a float graph
        assert manifest["compression"]["method"] == method and manifest["precision"] == "int8"
        parity = manifest["parity"]["int8"]
        assert parity["passed"] and parity["top1_agreement"] == 1.0, (name, method, parity)


def test_picpq_pruned_through_the_graph_and_says_what_it_left(journey):
    name, runs = journey
    ck, _bundle, out, _manifest = runs["picpq"]
    result = json.loads(out)
    plan = json.loads((ck / "config.json").read_text())["compression"]["prune"]
    assert plan["layout"] == "graph" and plan["input_shape"] == [1, 28, 28] and plan["pruned"]
    assert result["totals"]["macs"] < result["totals"]["macs_ref"]
    if name == "odd_net":
        assert set(result["not_pruned"]) == {"stem.0", "grouped.0", "mix.0"}
        assert "grouped convolution grouped.0" in result["not_pruned"]["grouped.0"]
        assert set(result["left_float"]) == {"smooth", "spare"} and set(plan["pruned"]) == {"down.0"}
    else:
        assert result["not_pruned"] == {} and result["left_float"] == {}


def test_ghost_names_what_it_left_in_float(journey):
    name, runs = journey
    _ck, _bundle, out, _manifest = runs["ghost"]
    if name == "odd_net":  # the human table
        assert "left in float: smooth" in out and "Conv1d smooth is not quantized" in out
        assert "left in float: spare" in out and "does not run in a forward pass" in out
    else:
        assert json.loads(out)["left_float"] == {}


EDGE_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the Q/DQ graph as written
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.concatenate([s.run(["logits"], {"input": x[i:i + 1]})[0] for i in range(len(x))]))
sys.stdout.write("%s %s" % (sys.version_info[:2], ort.__version__))
"""


def test_each_bundle_runs_in_onnxruntime_1_10_under_python_3_6_like_the_restored_checkpoint(
    journey, python36, tmp_path
):
    from edgefl.checkpoint import load_checkpoint
    from edgefl.data import normalize

    name, runs = journey
    _, test = train_test_split(load_mnist(), 0.2, seed=0)
    for method, (ck, bundle, _out, manifest) in runs.items():
        x = normalize(test.x[:32], manifest["preprocessing"])
        np.save(str(tmp_path / "x.npy"), x, allow_pickle=False)
        proc = subprocess.run(
            [python36, "-c", EDGE_SCRIPT, str(bundle / "model.onnx"), str(tmp_path / "x.npy"),
             str(tmp_path / "logits.npy")],
            capture_output=True, timeout=120, check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        assert proc.stdout.decode().startswith("(3, 6) 1.10")
        restored = load_checkpoint(ck).model.eval()  # plan replayed, quantizers rebuilt, weights loaded
        with torch.no_grad():
            expected = restored(torch.from_numpy(x)).numpy()
        got = np.load(str(tmp_path / "logits.npy"))
        assert np.abs(got - expected).max() < 1e-3 * (1 + np.abs(expected).max()), (name, method)
        assert (got.argmax(1) == expected.argmax(1)).all(), (name, method)
