"""GHOST pipeline: bit specs, GQSD twin, quantizer round trips, training with learned gates, checkpoint
round trip and the CLI (tiny synthetic data, so the whole file runs in seconds)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgefl.compress.method import ClassifierData
from edgefl.ghost import GhostSettings
from edgefl.ghost.student import default_feature_layers, ghost_layer_specs, hybrid_bits, quantized_twin
from edgefl.methods import ghost
from edgefl.ghost.train import build_ost
from edgefl.compress.qmodules import QConv2d
from edgefl.compress.quant import RangeActQuantizer
from edgefl.data import ArrayData
from edgefl.errors import EdgeflError
from edgefl.models import build_model
from edgefl.runtime.bundle import seal

PREP = {"scale": 1 / 255, "mean": [0.5], "std": [0.5]}


def _data(n=192, seed=0):
    """Two classes: a bright blob in the top or in the bottom half of a 12×12 image."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.uniform(0, 0.3, (n, 1, 12, 12)).astype(np.float32)
    for i, label in enumerate(y):
        r = rng.integers(0, 4) + (7 if label else 1)
        c = rng.integers(1, 9)
        x[i, 0, r : r + 3, c : c + 3] = 1.0
    return ArrayData(x, y.astype(np.int64))


def _teacher():
    torch.manual_seed(0)
    return build_model("small_cnn", in_channels=1, num_classes=2, width=8, hidden=16).eval()


def _config(**kw):
    base = dict(tau=50.0, epochs=1, batch_size=32, lr=0.02, qk_dim=8, seed=0)
    return GhostSettings(**{**base, **kw})


def test_activation_bits_follow_the_previous_conv_and_the_first_sees_the_image():
    specs = ghost_layer_specs({"a": 5, "b": 3, "c": 7})
    assert specs["a"] == {"w": {"kind": "dorefa", "bits": 5}, "a": None}
    assert specs["b"]["a"]["bits"] == 5 and specs["c"]["a"]["bits"] == 3
    assert specs["c"]["w"] == {"kind": "dorefa", "bits": 7}


def test_student_is_a_quantized_twin_initialised_from_the_teacher():
    teacher = _teacher()
    bits = {"body.0": 4, "body.3": 3}
    student = quantized_twin(teacher, bits)
    assert isinstance(student.body[0], QConv2d) and student.body[0].w_bits == 4
    assert student.body[3].a_bits == 4 and student.body[0].a_bits == 32
    for (n, p), (_, q) in zip(teacher.named_parameters(), student.named_parameters()):
        assert torch.equal(p, q), n
    assert not isinstance(teacher.body[0], QConv2d)  # the teacher is untouched


@pytest.mark.parametrize("bits", [2, 3, 5, 7])
def test_weight_quantizer_round_trips_through_its_integer_grid(bits):
    student = quantized_twin(_teacher(), {"body.0": bits, "body.3": bits})
    conv = student.body[3]
    wq = conv.weight_quant(conv.weight)
    ints, scale = conv.weight_quant.grid(conv.weight)
    assert torch.allclose(wq, ints * scale.view(-1, 1, 1, 1), atol=1e-6)
    assert wq.unique().numel() <= 2**bits and wq.abs().max() <= 1.0 + 1e-6
    assert torch.all(ints.remainder(2) == 1)  # odd integers: the DoReFa grid has no zero


def test_export_form_reproduces_the_fake_quant_student():
    """Fake-quant (training form) -> BN folded, integer grid, 8-bit Q/DQ containers (export form)."""
    from edgefl.compress import prepare_for_export

    torch.manual_seed(1)
    teacher = build_model("resnet20", in_channels=1, num_classes=10)
    bits = dict.fromkeys([n for n, m in teacher.named_modules() if isinstance(m, nn.Conv2d)], 5)
    bits["conv1"], bits["layer3.2.conv2"] = 7, 3
    student = quantized_twin(teacher, bits).train()
    with torch.no_grad():  # give BN non-trivial running statistics
        student(torch.randn(32, 1, 8, 8))
    student.eval()
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        ref, got = student(x), prepare_for_export(student)(x)
        # folding moves float rounding, so an activation may land on the neighbouring level
        assert (ref.argmax(1) == got.argmax(1)).float().mean() >= 0.85
        for layer in student.modules():  # weights + BN fold alone: exact up to float rounding
            if isinstance(layer, QConv2d):
                layer.act_quant = None
        ref, got = student(x), prepare_for_export(student)(x)
    assert torch.allclose(ref, got, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_activation_quantizer_levels_and_straight_through_gradient():
    q = RangeActQuantizer(3, 1.0, False)
    x = torch.linspace(-0.5, 1.5, 101, requires_grad=True)
    y = q(x)
    assert y.unique().numel() <= 8 and y.min() >= 0 and y.max() <= 1
    y.sum().backward()
    inside = (x > 0) & (x < 1)
    half_step = 0.5 / 7  # fake_quantize masks by the rounded value: the clamp is at [-s/2, 1 + s/2]
    assert torch.all(x.grad[inside] == 1) and torch.all(x.grad[(x < -half_step) | (x > 1 + half_step)] == 0)


def test_default_feature_layers_pair_blocks_or_convs():
    resnet = build_model("resnet20", in_channels=1, num_classes=10)
    assert default_feature_layers(resnet) == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    assert default_feature_layers(_teacher()) == ["body.0", "body.3"]


def test_hybrid_bits_and_uniform_bits():
    teacher = _teacher()
    bits, tau = hybrid_bits(teacher, _config())
    assert list(bits) == ["body.0", "body.3"] and tau == 50.0
    assert all(2 <= b <= 8 for b in bits.values())
    assert hybrid_bits(teacher, _config(uniform_bits=4)) == ({"body.0": 4, "body.3": 4}, None)
    with pytest.raises(EdgeflError, match="no Conv2d"):
        hybrid_bits(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), _config())


def test_ghost_trains_the_student_and_its_gates():
    train, test = _data(192, 0), _data(96, 1)
    teacher = _teacher()
    result = ghost(teacher, ClassifierData(train, test, PREP), settings=_config())
    assert result.totals["bops_ratio"] > 1 and result.totals["size_ratio"] > 1
    rates = result.extra["history"][-1]["gate_open_rate"]
    assert len(rates) == 2 and all(0.0 <= r <= 1.0 for r in rates)
    # the SCM's projections moved away from their (seeded) initialisation
    sample = torch.zeros(32, 1, 12, 12)
    bits = result.extra["bits"]
    fresh = build_ost(teacher, quantized_twin(teacher, bits), ["body.0", "body.3"], sample, _config())
    trained = dict(result.parts["ost"].named_parameters())
    moved = [n for n, p in fresh.named_parameters() if not torch.equal(p, trained[n])]
    assert len(moved) >= len(trained) // 2
    assert result.state["method"] == "ghost" and result.state["bits"] == bits
    json.dumps(result.state)  # the checkpoint state is plain JSON


def test_no_distillation_has_no_gates_and_same_seed_is_deterministic():
    train, test = _data(192, 0), _data(64, 1)
    a = ghost(_teacher(), ClassifierData(train, test, PREP), settings=_config(distill=False))
    b = ghost(_teacher(), ClassifierData(train, test, PREP), settings=_config(distill=False))
    assert a.parts["ost"] is None and "gate_open_rate" not in a.extra["history"][0]
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)


def test_bad_settings_are_clear_errors():
    with pytest.raises(EdgeflError, match="gate mode"):
        _config(gate_mode="sometimes").check()
    with pytest.raises(EdgeflError, match="feature layers"):
        ghost(
            _teacher(), ClassifierData(_data(64), _data(32), PREP), settings=_config(feature_layers=("nope",))
        )


def _checkpoint(tmp_path):
    from edgefl.checkpoint import save_checkpoint

    data = _data(256, 3)
    np.savez(tmp_path / "d.npz", x=data.x, y=data.y)
    config = {
        "model": "small_cnn",
        "model_args": {"in_channels": 1, "num_classes": 2, "width": 8, "hidden": 16},
        "input_shape": [1, 12, 12],
        "num_classes": 2,
        "preprocessing": PREP,
        "data": str(tmp_path / "d.npz"),
        "metrics": {"seed": 0, "test_fraction": 0.25},
    }
    return save_checkpoint(tmp_path / "fp", _teacher(), config)


def test_cli_writes_a_checkpoint_that_restores_to_the_same_accuracy(tmp_path, capsys):
    from edgefl.checkpoint import load_checkpoint
    from edgefl.cli.app import main
    from edgefl.data import load_dataset, train_test_split
    from edgefl.train import evaluate

    fp = _checkpoint(tmp_path)
    code = main(
        [
            "compress",
            "ghost",
            str(fp),
            "--out",
            str(tmp_path / "g"),
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--target-bits",
            "4",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["tau"] > 0
    assert out["totals"]["mean_bits"] <= 4.0
    assert {"size_ratio", "bops_ratio", "mean_bits", "accuracy_before", "accuracy_after"} <= set(
        out["totals"]
    )
    assert [r["w_bits"] for r in out["layers"] if r["kind"] == "conv"] == list(out["bits"].values())
    ck = load_checkpoint(tmp_path / "g")
    assert ck.config["compression"]["method"] == "ghost"
    assert isinstance(ck.model.body[0], QConv2d) and ck.model.body[3].a_bits == out["bits"]["body.0"]
    data, _ = load_dataset(str(tmp_path / "d.npz"))
    _, test = train_test_split(data, 0.25, 0)
    assert evaluate(ck.model, test, PREP)["accuracy"] == out["totals"]["accuracy_after"]


def test_cli_rejects_an_already_compressed_checkpoint_in_one_line(tmp_path, capsys):
    from edgefl.cli.app import main

    fp = _checkpoint(tmp_path)
    cfg = json.loads((fp / "config.json").read_text())
    cfg["compression"] = {"method": "ghost", "layers": {}}
    (fp / "config.json").write_text(json.dumps(seal(cfg)))
    code = main(["compress", "ghost", str(fp), "--out", str(tmp_path / "g")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_distiller_plugs_into_any_training_loop():
    """The API other methods (e.g. the STAD student) use: any conv model + a list of paired layers."""
    from edgefl.ghost.train import GhostDistiller

    teacher = _teacher()
    student = quantized_twin(teacher, {"body.0": 4, "body.3": 3})
    x = torch.from_numpy(_data(16).x)
    distiller = GhostDistiller(teacher, student, ["body.0", "body.3"], x, _config())
    student.train()
    distiller.train()
    student(x)
    loss = distiller(x)
    loss.backward()
    assert loss.dim() == 0 and student.body[0].weight.grad is not None
    assert all(p.grad is not None for p in distiller.parameters())
    assert not any(p.requires_grad for p in teacher.parameters())
    assert "_teacher" not in dict(distiller.named_children())
    distiller.close()
    assert not student.body[0]._forward_hooks and not teacher.body[0]._forward_hooks
