"""A user's model federated from its bundle, through Mosquitto.

The model is not the zoo's: no ``features()``, its head is called ``fc`` and sits after a squeeze-excitation
gate and a concatenating stem. Export finds the head (the last nn.Linear) and takes the features from a
forward hook on its input, so the bundle carries ``logits`` + ``features`` and ``head.safetensors`` like a
zoo model's; two agents then fine-tune that head on the features their onnxruntime engine computes
(`edgefl agent --bundle`, numpy), and `edgefl aggregate` averages them and scores the result on
held-out images through the same bundle — all console scripts, one real broker.
"""

import json
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

WIDTH = 8  # se_concat_net's width: 4·8 = 32 features


@pytest.fixture(scope="module")
def user_bundle(tmp_path_factory, fixture_model):
    """The fixture model trained briefly on 1,000 shipped MNIST images and exported for a Jetson TX2."""
    from edgefl.data import MNIST_PREPROCESSING, ArrayData, load_mnist, train_test_split
    from edgefl.export import export_module
    from edgefl.train import train_classifier

    torch.set_num_threads(1)
    train, test = train_test_split(load_mnist(), 0.2, seed=0)
    model = fixture_model("se_concat_net", width=WIDTH)
    train_classifier(model, ArrayData(train.x[:1000], train.y[:1000]), epochs=4, lr=0.2, batch_size=32,
                     preprocessing=MNIST_PREPROCESSING)
    model.eval()
    out = tmp_path_factory.mktemp("user") / "bundle"
    result = export_module(
        model, test.x[:64], profile="jetson-tx2", out=out, preprocessing=MNIST_PREPROCESSING
    )
    return model, out, result.manifest, train, test


def test_the_bundle_of_a_model_without_zoo_conventions_has_its_head_and_features(user_bundle):
    from safetensors.numpy import load_file

    from edgefl.data import MNIST_PREPROCESSING, normalize
    from edgefl.runtime.engine import open_engine

    model, bundle, manifest, _train, test = user_bundle
    assert [o["name"] for o in manifest["outputs"]] == ["logits", "features"]
    assert manifest["outputs"][1]["shape"] == [1, 4 * WIDTH] and manifest["opset"] == 13
    head = load_file(str(bundle / "head.safetensors"))
    assert np.array_equal(head["weight"], model.fc.weight.detach().numpy())
    assert np.array_equal(head["bias"], model.fc.bias.detach().numpy())
    # the engine's features are the head's input: W·features + b gives the engine's logits
    engine = open_engine(str(bundle), backend="onnxruntime")
    x = normalize(test.x[:8], MNIST_PREPROCESSING)
    out = engine.infer({"input": x[:1]})
    logits = out["features"] @ head["weight"].T + head["bias"]
    assert np.abs(logits - out["logits"]).max() < 1e-4


def _npz(path, x, y):
    np.savez(path, x=(x[:, 0] * 255).round().astype(np.uint8), y=y)
    return path


def test_one_federated_round_with_a_user_model_bundle(user_bundle, mosquitto, tmp_path, tool):
    from edgefl.runtime.config import load_model_tensors
    from edgefl.runtime.evaluation import BundleEvaluator

    _model, bundle, _manifest, train, test = user_bundle
    edgefl = tool("edgefl", "the edgefl console script (pip install -e .)")
    local = _npz(tmp_path / "local.npz", train.x[1000:1200], train.y[1000:1200])
    held = _npz(tmp_path / "held.npz", test.x[:300], test.y[:300])
    common = ["--broker", mosquitto.url, "--federation", "user", "--json"]
    final = tmp_path / "final.safetensors"
    procs = []
    try:
        agg = subprocess.Popen(
            [edgefl, "aggregate", "--model", str(bundle), "--rounds", "1", "--min-clients", "2",
             "--clients-per-round", "2", "--train-option", "epochs=3", "--out", str(final),
             "--eval-data", str(held), "--timeout", "120", *common],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        procs.append(agg)
        agents = [
            subprocess.Popen(
                [edgefl, "agent", "--client-id", f"u{i}", "--bundle", str(bundle), "--data", str(local),
                 "--partition", f"{i}/2", "--backend", "onnxruntime", "--timeout", "120", *common],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            for i in range(2)
        ]
        procs += agents
        outs = [p.communicate(timeout=180) for p in agents + [agg]]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(agents + [agg], outs):
        assert p.returncode == 0, err.decode()[-3000:]
    results = [json.loads(o) for o, _ in outs]
    assert [r["updates_sent"] for r in results[:2]] == [1, 1]
    summary = results[2]
    assert summary["done"] and sorted(summary["history"][0]["clients"]) == ["u0", "u1"]
    initial = load_model_tensors(str(bundle))  # the bundle's head, by its federated names
    trained = load_model_tensors(str(final))
    assert set(trained) == set(initial) and trained["classifier.weight"].shape == (10, 4 * WIDTH)
    assert np.abs(trained["classifier.weight"] - initial["classifier.weight"]).max() > 1e-4
    # the aggregator scored the federated head through the user's bundle on the held-out images
    held_x = (test.x[:300] * 255).round().astype(np.uint8)
    expected = BundleEvaluator(str(bundle), held_x, test.y[:300]).evaluate(trained)
    scored = summary["history"][0]["eval"]
    assert scored["examples"] == 300 and scored["accuracy"] == expected["accuracy"] > 0.4

