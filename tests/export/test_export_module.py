"""`edgefl.export.export_module`: any nn.Module with sample inputs -> the same verified bundle (the README's
worked example, run as written)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edgefl.errors import EdgeflError
from edgefl.export.graph_checks import max_opset

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet() -> str:
    text = README.read_text()
    start = text.index("`edgefl.export.export_module` exports any `nn.Module`")
    return text[start:].split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_runs_as_written(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", readme_snippet()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    opset, max_abs = proc.stdout.split()
    assert opset == "13" and float(max_abs) < 1e-4
    bundle = tmp_path / "runs" / "net-tx2"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model"] == "Net" and manifest["verification"]["samples"] == "samples given"
    assert manifest["parity"]["fp32"]["samples"] == 128 and manifest["outputs"][1]["shape"] == [1, 16]
    assert max_opset(onnx.load(str(bundle / "model.onnx"))) == 13


def test_preprocessing_labels_and_a_named_head(tmp_path):
    from safetensors.numpy import load_file

    from edgefl.export import export_module

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    )
    x = np.random.default_rng(0).random((20, 1, 4, 4), np.float32)
    prep = {"mean": [0.5], "std": [0.25]}
    result = export_module(
        net.eval(),
        x,
        profile="jetson-nano",
        out=tmp_path / "b",
        preprocessing=prep,
        labels=["a", "b", "c"],
        name="tiny",
    )
    m = result.manifest
    assert (m["model"], m["labels"], m["preprocessing"]) == ("tiny", ["a", "b", "c"], prep)
    assert m["parity"]["fp32"]["samples"] == 10 and m["outputs"][1]["shape"] == [1, 8]
    np.testing.assert_array_equal(
        load_file(str(tmp_path / "b" / "head.safetensors"))["weight"], net[3].weight.detach().numpy()
    )
    with pytest.raises(EdgeflError, match="not the output of its head 1 .something runs after it"):
        export_module(net.eval(), x, profile="jetson-nano", out=tmp_path / "c", head="1")
    with pytest.raises(EdgeflError, match="--head 2 is a ReLU, not an nn.Linear"):
        export_module(net.eval(), x, profile="jetson-nano", out=tmp_path / "c", head="2")
    with pytest.raises(EdgeflError, match="expected N×C×H×W with N ≥ 2"):
        export_module(net.eval(), x[0], profile="jetson-nano", out=tmp_path / "c")
    assert not (tmp_path / "c").exists()
