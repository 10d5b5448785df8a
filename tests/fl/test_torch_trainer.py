"""The torch trainer behind the runtime's Trainer protocol, and a round through the amqtt broker."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefl.data import ArrayData  # noqa: E402
from edgefl.fl.torch_trainer import TorchTrainer, federated_tensors, load_federated_tensors  # noqa: E402
from edgefl.models import build_model  # noqa: E402


def toy_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.random((n, 1, 28, 28)).astype(np.float32) * 0.2
    x[y == 1, :, :14] += 0.8  # class 1: bright top half
    return ArrayData(x, y.astype(np.int64))


def test_tensors_round_trip_and_shape_errors():
    torch.manual_seed(0)
    a, b = build_model("small_cnn", num_classes=2), build_model("small_cnn", num_classes=2)
    load_federated_tensors(b, federated_tensors(a))
    for k, v in federated_tensors(b).items():
        np.testing.assert_array_equal(v, federated_tensors(a)[k])
    bad = federated_tensors(a)
    bad["classifier.bias"] = np.zeros(3, np.float32)
    from edgefl.errors import EdgeflError

    with pytest.raises(EdgeflError, match="shape"):
        load_federated_tensors(b, bad)


def test_local_training_learns_and_prox_stays_closer():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = federated_tensors(build_model("small_cnn", num_classes=2))
    trainer = TorchTrainer(build_model("small_cnn", num_classes=2), toy_data(), seed=0)
    opts = {"epochs": 3, "lr": 0.05, "batch_size": 16, "momentum": 0.9}
    res = trainer.train(g, opts)
    assert res.num_examples == 64
    from edgefl.train import evaluate

    model = build_model("small_cnn", num_classes=2)
    load_federated_tensors(model, res.tensors)
    assert evaluate(model, toy_data())["accuracy"] > 0.9
    load_federated_tensors(model, g)
    assert evaluate(model, toy_data())["accuracy"] < 0.8  # it was training that did it
    free = sum(np.sum((res.tensors[k] - g[k]) ** 2) for k in g)
    prox = trainer.train(g, dict(opts, prox_mu=5.0))
    near = sum(np.sum((prox.tensors[k] - g[k]) ** 2) for k in g)
    assert near < free
