"""Fixtures for the export tests: one briefly trained ResNet-20 checkpoint and its jetson-tx2 bundle.

The model is trained for a few dozen steps only (parity needs realistic activations, not accuracy);
everything runs on one CPU thread.
"""

import numpy as np
import pytest
import torch

from edgefl.checkpoint import save_checkpoint
from edgefl.data import MNIST_PREPROCESSING, load_mnist, normalize, train_test_split
from edgefl.models import build_model

MODEL_ARGS = {"in_channels": 1, "num_classes": 10}


def briefly_trained_resnet20(samples=512, seed=0):
    """Random-init ResNet-20 with data-calibrated BatchNorm and a least-squares classifier head.

    Cheap (two forward passes, no backprop) yet it predicts all ten digits, so top-1 agreement is
    measured on real decisions rather than on a constant prediction.
    """
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = build_model("resnet20", **MODEL_ARGS)
    train, _test = train_test_split(load_mnist(), 0.2, seed=0)
    x = torch.from_numpy(normalize(train.x[:samples], MNIST_PREPROCESSING))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for start in range(0, 256, 64):
            model(x[start : start + 64])
        model.eval()
        feats = model.features(x).double().numpy()
    onehot = np.eye(10)[train.y[:samples]]
    design = np.hstack([feats, np.ones((len(feats), 1))])
    solution = np.linalg.solve(design.T @ design + 1e-2 * np.eye(design.shape[1]), design.T @ onehot)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(solution[:-1].T.copy()))
        model.classifier.bias.copy_(torch.from_numpy(solution[-1].copy()))
    return model


SMALL_CNN_ARGS = {"in_channels": 1, "num_classes": 10, "width": 8, "hidden": 32}


def trained_small_cnn(samples=3000, epochs=2, seed=0):
    """A narrow SmallCNN trained for two quick epochs (~85% test accuracy, clear logit margins).

    INT8 top-1 agreement is only meaningful for a model whose decisions have margins, which the
    untrained ResNet-20 above lacks.
    """
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = build_model("small_cnn", **SMALL_CNN_ARGS)
    train, _test = train_test_split(load_mnist(), 0.2, seed=0)
    x = torch.from_numpy(normalize(train.x[:samples], MNIST_PREPROCESSING))
    y = torch.from_numpy(train.y[:samples])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for start in range(0, samples, 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[start : start + 64]), y[start : start + 64]).backward()
            opt.step()
    return model.eval()


def save_classifier(path, model, compression=None, name="resnet20", model_args=None):
    return save_checkpoint(
        path,
        model,
        {
            "model": name,
            "model_args": model_args or MODEL_ARGS,
            "input_shape": [1, 28, 28],
            "num_classes": 10,
            "labels": [str(i) for i in range(10)],
            "preprocessing": MNIST_PREPROCESSING,
            "data": "mnist",
            "compression": compression,
        },
    )


@pytest.fixture(scope="session")
def save_classifier_checkpoint():
    """The checkpoint writer used by the fixtures: save(path, model, compression=None) -> path."""
    return save_classifier


@pytest.fixture(scope="session")
def resnet20_checkpoint(tmp_path_factory):
    """A ResNet-20 checkpoint (MNIST, briefly trained) on disk."""
    return save_classifier(tmp_path_factory.mktemp("ck") / "resnet20", briefly_trained_resnet20())


@pytest.fixture(scope="session")
def small_cnn_checkpoint(tmp_path_factory):
    """A trained narrow SmallCNN checkpoint (for INT8 and quantization-aware tests)."""
    path = tmp_path_factory.mktemp("ck") / "small_cnn"
    return save_classifier(path, trained_small_cnn(), name="small_cnn", model_args=SMALL_CNN_ARGS)


@pytest.fixture(scope="session")
def tx2_bundle(resnet20_checkpoint, tmp_path_factory):
    """fp32 ONNX bundle for jetson-tx2, parity on the whole shipped MNIST test split (2000 images)."""
    from edgefl.export.pipeline import ExportRequest, export_checkpoint

    out = tmp_path_factory.mktemp("bundles") / "tx2-fp32"
    request = ExportRequest(resnet20_checkpoint, "jetson-tx2", "fp32", "onnx", out, parity_samples=2000)
    return export_checkpoint(request)


@pytest.fixture(scope="session")
def mnist_test_inputs():
    """The normalised MNIST test split (train_test_split seed 0), as the export's parity uses it."""
    _train, test = train_test_split(load_mnist(), 0.2, seed=0)
    return normalize(test.x, MNIST_PREPROCESSING).astype(np.float32)
