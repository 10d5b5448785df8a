"""The method registry: one entry per method, the CLI's `compress` commands and the Python API built from
it, the baselines through the protocol, checkpoint in/out refusals."""

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import edgefl.methods as methods
from edgefl.compress.method import ClassifierData, CompressionResult, Method
from edgefl.errors import EdgeflError
from edgefl.methods.registry import METHODS, method_named
from edgefl.models import build_model

EDGEFL = Path(sys.executable).with_name("edgefl")
PREP = {"scale": 1 / 255, "mean": [0.5], "std": [0.5]}


def test_every_entry_has_the_method_shape():
    for name, method in METHODS.items():
        assert isinstance(method, Method) and method.name == name
        assert dataclasses.is_dataclass(method.settings) and callable(method.settings.check)
        plan, apply = (list(inspect.signature(f).parameters) for f in (method.plan, method.apply))
        assert plan[1:] == ["data", "settings", "progress"] or plan[1:] == ["scenes", "settings", "progress"]
        assert apply[1:] == [plan[1], "plan", "settings", "progress"], name
        assert (method.export is None) == (method.claims is None), name


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(EdgeflError, match="unknown compression method 'zip' — known: picpq, ghost, stad"):
        method_named("zip")


def test_python_api_has_one_function_per_entry():
    for name, method in METHODS.items():
        api = getattr(methods, name)
        assert callable(api) and api.__name__ == name and method.label in api.__doc__
        assert name in dir(methods) and name in methods.__all__
    with pytest.raises(AttributeError):
        methods.zip  # noqa: B018 - the attribute access is the test


def test_compress_commands_are_the_registry_entries_with_a_command():
    out = subprocess.run(
        [str(EDGEFL), "compress", "--help"], capture_output=True, text=True, check=True
    ).stdout
    commands = out[out.index("Commands") :]
    listed = {name for name in METHODS if f"│ {name} " in commands}
    assert listed == {name for name, m in METHODS.items() if m.command} == {"picpq", "ghost", "stad"}
    assert "PIC-PQ, GHOST, or STAD distillation" in " ".join(out.split())


def test_baselines_run_through_the_protocol(blob_data):
    torch.manual_seed(0)
    fp = build_model("resnet20", in_channels=1, num_classes=2).eval()
    data = ClassifierData(blob_data(64, 0), blob_data(32, 1), PREP)
    uni = methods.uniform(fp, data, bits=4, epochs=1, batch_size=32)
    assert isinstance(uni, CompressionResult) and uni.state["method"] == "uniform"
    rows = {r["layer"]: r for r in uni.layers}
    assert rows["conv1"]["w_bits"] == 32 and rows["classifier"]["w_bits"] == 32
    assert (
        rows["layer2.0.conv1"]["w_bits"] == 4
        and rows["layer2.0.conv1"]["bops"] * 64 == rows["layer2.0.conv1"]["bops_ref"]
    )
    budget = uni.totals["bops"] * 0.8
    mag = methods.magnitude(fp, data, target_bops=budget, bits=4, ft_epochs=1, qat_epochs=1, batch_size=32)
    assert mag.totals["bops"] <= budget and mag.state["prune"]["pruned"] and mag.extra["bits"] <= 4
    with pytest.raises(EdgeflError, match="needs a BOPs budget"):
        methods.magnitude(fp, data)
    with pytest.raises(TypeError, match="either settings= or keyword options"):
        methods.uniform(fp, data, settings=METHODS["uniform"].settings(), bits=8)


def test_load_float_checkpoint_refuses_compressed_or_dataless_checkpoints(tmp_path):
    from edgefl.checkpoint import save_checkpoint
    from edgefl.data import MNIST_PREPROCESSING, load_mnist, train_test_split
    from edgefl.methods.checkpoints import load_float_checkpoint

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
    ckpt, split = load_float_checkpoint(tmp_path / "nodata", "mnist")
    ref_train, ref_test = train_test_split(load_mnist(), 0.25, 3)  # the checkpoint's seeded split
    assert np.array_equal(split.test.y, ref_test.y) and np.array_equal(split.train.x, ref_train.x)
    assert split.shape == [1, 28, 28] and split.preprocessing == MNIST_PREPROCESSING
    assert (
        len(split.test) != len(train_test_split(load_mnist(), 0.2, 0)[1])
        and ckpt.config["model"] == "small_cnn"
    )
    save_checkpoint(tmp_path / "pq", model, {**base, "data": "mnist", "compression": {"method": "picpq"}})
    with pytest.raises(EdgeflError, match=r"already compressed \(picpq\) — start from the float checkpoint"):
        load_float_checkpoint(tmp_path / "pq")
