"""README's "Extending edgefl" example is a working method: one module plus one registry line gives the
Python API and a checkpoint that loads back (through the one restorer) with the same accuracy."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import torch

import edgefl.methods as methods
from edgefl.compress.method import ClassifierData, run
from edgefl.data import ArrayData
from edgefl.methods.registry import METHODS
from edgefl.models import build_model

README = Path(__file__).resolve().parents[2] / "README.md"
PREP = {"scale": 1 / 255, "mean": [0.5], "std": [0.5]}


def _example_module(tmp_path):
    section = README.read_text().split("## Extending edgefl: a new compression method", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert '`"convqat": convqat.METHOD,`' in section  # the one registry line the text asks for
    (tmp_path / "convqat.py").write_text(code)
    spec = importlib.util.spec_from_file_location("convqat", tmp_path / "convqat.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_method_runs_registers_and_restores(tmp_path, monkeypatch, blob_data):
    from edgefl.checkpoint import load_checkpoint, save_checkpoint
    from edgefl.train import evaluate

    convqat = _example_module(tmp_path)
    torch.manual_seed(0)
    args = {"in_channels": 1, "num_classes": 2, "width": 8, "hidden": 16}
    fp = build_model("small_cnn", **args).eval()
    data = ClassifierData(blob_data(96, 0), blob_data(48, 1), PREP)
    result = run(convqat.METHOD, fp, data, convqat.ConvQatSettings(bits=3))
    rows = {r["layer"]: r for r in result.layers}
    assert (
        rows["body.0"]["w_bits"] == 32 and rows["body.3"]["w_bits"] == 3 and result.totals["bops_ratio"] > 1
    )

    monkeypatch.setitem(METHODS, "convqat", convqat.METHOD)
    train_test = ArrayData(
        np.concatenate([data.train.x, data.test.x]), np.concatenate([data.train.y, data.test.y])
    )
    np.savez(tmp_path / "d.npz", x=train_test.x, y=train_test.y)
    config = {
        "model": "small_cnn",
        "model_args": args,
        "input_shape": [1, 12, 12],
        "num_classes": 2,
        "preprocessing": PREP,
        "data": str(tmp_path / "d.npz"),
        "metrics": {"seed": 0, "test_fraction": 0.25},
    }
    save_checkpoint(tmp_path / "fp", fp, config)
    summary = methods.compress_checkpoint(
        "convqat", tmp_path / "fp", tmp_path / "q", convqat.ConvQatSettings()
    )
    restored = load_checkpoint(tmp_path / "q")
    assert restored.config["compression"]["method"] == "convqat" and restored.model.body[3].w_bits == 4
    _, split = methods.checkpoints.load_float_checkpoint(tmp_path / "fp")
    assert evaluate(restored.model, split.test, PREP)["accuracy"] == summary["totals"]["accuracy_after"]
    assert methods.convqat(fp, data, bits=2).state["bits"] == 2
