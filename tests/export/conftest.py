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


def save_resnet20(path, model):
    return save_checkpoint(
        path,
        model,
        {
            "model": "resnet20",
            "model_args": MODEL_ARGS,
            "input_shape": [1, 28, 28],
            "num_classes": 10,
            "labels": [str(i) for i in range(10)],
            "preprocessing": MNIST_PREPROCESSING,
            "data": "mnist",
        },
    )


@pytest.fixture(scope="session")
def resnet20_checkpoint(tmp_path_factory):
    """A ResNet-20 checkpoint (MNIST, briefly trained) on disk."""
    return save_resnet20(tmp_path_factory.mktemp("ck") / "resnet20", briefly_trained_resnet20())


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
