"""`edgefl compress picpq` end to end on a tiny budget (no training epochs): JSON output, a checkpoint
that restores, and clean one-line errors."""

import json

import pytest
import torch
from typer.testing import CliRunner

from edgefl.checkpoint import load_checkpoint, save_checkpoint
from edgefl.data import MNIST_PREPROCESSING
from edgefl.models import build_model

typer = pytest.importorskip("typer")


def _app():
    import typer as t

    from edgefl.cli.compress_picpq import command

    app = t.Typer()
    app.command()(command)
    return app


@pytest.fixture(scope="module")
def fp_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("resnet20", in_channels=1, num_classes=10)
    path = tmp_path_factory.mktemp("fp") / "ckpt"
    save_checkpoint(
        path,
        model,
        {
            "model": "resnet20",
            "model_args": {"in_channels": 1, "num_classes": 10},
            "input_shape": [1, 28, 28],
            "num_classes": 10,
            "preprocessing": MNIST_PREPROCESSING,
            "data": "mnist",
            "metrics": {"seed": 0, "test_fraction": 0.2},
        },
    )
    return path


@pytest.mark.slow
def test_cli_json_and_restorable_checkpoint(fp_checkpoint, tmp_path):
    out = tmp_path / "pq"
    res = CliRunner().invoke(
        _app(),
        [
            str(fp_checkpoint),
            "--out",
            str(out),
            "--json",
            "--generations",
            "0",
            "--population",
            "1",
            "--tau-hat",
            "0",
            "--ft-epochs",
            "0",
            "--qat-epochs",
            "0",
            "--flops-target",
            "0.6",
            "--max-bits",
            "32,8,6,4",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    t = doc["totals"]
    assert t["flops_kept"] < 0.6 and t["bops_ratio"] > 1 and t["bops"] < t["bops_ref"]
    assert {r["layer"] for r in doc["layers"]} >= {"conv1", "layer3.2.conv2", "classifier"}
    assert doc["search"]["evaluations"] == 1
    ckpt = load_checkpoint(out)
    assert ckpt.config["compression"]["method"] == "picpq"
    bits = {r["layer"]: r["w_bits"] for r in doc["layers"]}
    assert ckpt.model.layer3[0].conv1.w_bits == bits["layer3.0.conv1"] and bits["conv1"] == 32


def test_cli_rejects_bad_max_bits(fp_checkpoint, tmp_path):
    from edgefl.errors import EdgeflError

    res = CliRunner().invoke(_app(), [str(fp_checkpoint), "--out", str(tmp_path / "x"), "--max-bits", "8,a"])
    assert isinstance(res.exception, EdgeflError) and "--max-bits" in str(res.exception)
    res = CliRunner().invoke(
        _app(), [str(fp_checkpoint), "--out", str(tmp_path / "x"), "--flops-target", "1.5"]
    )
    assert isinstance(res.exception, EdgeflError) and "flops-target" in str(res.exception)
