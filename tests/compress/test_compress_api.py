"""Public API of edgefl.compress: __all__, the restorer registry, one-line errors for bad methods."""

import importlib
import inspect

import pytest

import edgefl.compress as compress
from edgefl.errors import EdgeflError


def test_all_matches_public_names():
    public = {
        n
        for n, obj in vars(compress).items()
        if not n.startswith("_") and inspect.isfunction(obj) and obj.__module__ == compress.__name__
    }
    assert set(compress.__all__) == public | {"RESTORERS"}


def test_every_restorer_resolves():
    for method, target in compress.RESTORERS.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), method


def test_unknown_method_is_an_edgefl_error():
    with pytest.raises(EdgeflError, match="known: "):
        compress.restore_model(None, {"method": "zip"}, {})


def test_load_float_checkpoint_refuses_compressed_or_dataless_checkpoints(tmp_path):
    import torch

    from edgefl.checkpoint import save_checkpoint
    from edgefl.compress.pipeline import load_float_checkpoint
    import numpy as np

    from edgefl.data import MNIST_PREPROCESSING, load_mnist, train_test_split
    from edgefl.models import build_model

    torch.manual_seed(0)
    base = {
        "model": "small_cnn",
        "model_args": {"in_channels": 1, "num_classes": 10},
        "input_shape": [1, 28, 28],
        "num_classes": 10,
        "preprocessing": MNIST_PREPROCESSING,
        "metrics": {"seed": 3, "test_fraction": 0.25},
    }
    model = build_model("small_cnn", in_channels=1, num_classes=10)
    save_checkpoint(tmp_path / "nodata", model, base)
    with pytest.raises(EdgeflError, match="does not name its data — pass --data"):
        load_float_checkpoint(tmp_path / "nodata")
    ckpt, train, test = load_float_checkpoint(tmp_path / "nodata", "mnist")
    ref_train, ref_test = train_test_split(load_mnist(), 0.25, 3)  # the checkpoint's seeded split
    assert np.array_equal(test.y, ref_test.y) and np.array_equal(train.x, ref_train.x)
    assert len(test) != len(train_test_split(load_mnist(), 0.2, 0)[1]) and ckpt.config["model"] == "small_cnn"
    save_checkpoint(tmp_path / "pq", model, {**base, "data": "mnist", "compression": {"method": "picpq"}})
    with pytest.raises(EdgeflError, match=r"already compressed \(picpq\) — start from the float checkpoint"):
        load_float_checkpoint(tmp_path / "pq")
