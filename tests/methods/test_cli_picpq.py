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
    recorded = ckpt.config["compression"]["settings"]
    assert recorded["min_bits"] == 3 and recorded["tie_break"] == "l1"
    assert min(b for b in bits.values()) >= 3  # the default clamp holds in the written model


def test_paper_mode_keeps_its_own_defaults_unless_an_option_is_given():
    from edgefl.cli.compress_picpq import resolve_settings

    chosen = dict(flops_target=0.45, max_bits=(32, 8, 6, 4), lam=1 / 6, safeguard=0.1, seed=0)
    unset = dict(min_bits=None, tie_break=None, weight_quantizer=None)
    short = dict(
        generations=2, population=3, sample=3, tau_hat=4, ft_epochs=1, qat_epochs=1, lr=0.01, ft_lr=0.05
    )
    paper = resolve_settings(True, {**chosen, **unset}, short)
    assert (paper.min_bits, paper.tie_break, paper.weight_quantizer) == (2, "none", "dorefa_zero")
    assert (paper.generations, paper.population, paper.tau_hat) == (400, 64, 200)
    paper3 = resolve_settings(True, {**chosen, **unset, "min_bits": 3}, short)
    assert paper3.min_bits == 3 and paper3.tie_break == "none"
    quick = resolve_settings(False, {**chosen, **unset}, short)
    assert (quick.min_bits, quick.tie_break, quick.weight_quantizer) == (3, "l1", "symmetric")
    assert (quick.generations, quick.tau_hat) == (2, 4)
