"""Quantizers: grids, straight-through gradients, spec round trip, export-mode equivalence."""

import pytest
import torch

from edgefl.compress.quant import (
    DoReFaWeightQuantizer,
    RangeActQuantizer,
    SymmetricWeightQuantizer,
    act_quantizer_from_spec,
    dorefa_activation,
    dorefa_weight,
    quantize_k,
    symmetric_qmax,
    symmetric_scale,
    weight_quantizer_from_spec,
)


def test_quantize_k_levels_and_identity_gradient():
    x = torch.linspace(0, 1, 101, requires_grad=True)
    y = quantize_k(x, 2)  # levels 0, 1/3, 2/3, 1
    assert sorted(set(torch.round(y * 3).tolist())) == [0.0, 1.0, 2.0, 3.0]
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


@pytest.mark.parametrize("bits,expected", [(2, 1), (4, 7), (8, 127)])
def test_symmetric_qmax(bits, expected):
    assert symmetric_qmax(bits) == expected


def test_symmetric_weight_grid_contains_zero_and_is_per_channel():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 3, 3) * torch.tensor([0.01, 1.0, 10.0]).view(3, 1, 1, 1)
    q = SymmetricWeightQuantizer(3, 3, method="max")
    wq = q(w)
    for c in range(3):
        ints = wq[c] / q.scale[c]
        assert torch.allclose(ints, torch.round(ints), atol=1e-4)
        assert ints.abs().max() <= 3 + 1e-4 and len(torch.unique(torch.round(ints))) <= 7
    # max-abs scale: the largest weight of every channel maps to +-3 exactly
    assert torch.allclose(q.scale, w.abs().flatten(1).amax(1) / 3)
    ints, scale = q.grid(w)
    assert torch.allclose(ints * scale.view(3, 1, 1, 1), wq, atol=1e-6)


def test_mse_scale_not_worse_than_max():
    torch.manual_seed(1)
    w = torch.randn(8, 64)
    for bits in (2, 3, 4):
        errs = {}
        for method in ("max", "mse"):
            s = symmetric_scale(w, bits, method=method).view(-1, 1)
            q = symmetric_qmax(bits)
            errs[method] = ((torch.clamp(torch.round(w / s), -q, q) * s - w) ** 2).sum()
        assert errs["mse"] <= errs["max"] + 1e-6


def test_weight_ste_gradient_passes():
    w = torch.randn(4, 2, 3, 3, requires_grad=True)
    SymmetricWeightQuantizer(4, 4, method="max")(w).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_dorefa_ghost_weights_no_zero_and_at_most_2k_levels():
    torch.manual_seed(0)
    w = torch.randn(6, 3, 3, 3)
    for k in (2, 3, 4):
        wq = dorefa_weight(w, k, zero=False)
        levels = torch.unique(torch.round(wq * (2**k - 1)))
        assert len(levels) <= 2**k and wq.abs().max() <= 1 + 1e-6
        assert not torch.any(levels == 0)  # odd integers only
        assert torch.all(levels.remainder(2) == 1)


def test_dorefa_picpq_weights_symmetric_with_zero():
    torch.manual_seed(0)
    w = torch.randn(6, 3, 3, 3)
    wq = dorefa_weight(w, 4, zero=True)  # grid j/7, j in -7..7
    ints = wq * 7
    assert torch.allclose(ints, torch.round(ints), atol=1e-5)
    assert ints.abs().max().item() == pytest.approx(7.0)
    qz = DoReFaWeightQuantizer(4, 6, zero=True)
    ints, scale = qz.grid(w)
    assert torch.allclose(ints * scale.view(-1, 1, 1, 1), wq, atol=1e-6)
    qg = DoReFaWeightQuantizer(3, 6, zero=False)
    ints, scale = qg.grid(w)
    assert torch.allclose(ints * scale.view(-1, 1, 1, 1), qg(w), atol=1e-6)


def test_dorefa_activation_levels_and_clamp_gradient():
    x = torch.linspace(-0.5, 1.5, 201, requires_grad=True)
    y = dorefa_activation(x, 3)
    assert y.min() == 0 and y.max() == 1
    assert len(torch.unique(y)) <= 8
    assert torch.allclose(y * 7, torch.round(y * 7), atol=1e-5)
    y.sum().backward()
    inside = (x > 0.01) & (x < 0.99)
    outside = (x < -0.1) | (x > 1.1)
    assert torch.all(x.grad[inside] == 1) and torch.all(x.grad[outside] == 0)


def test_activation_calibration_sets_clip_and_sign():
    a = RangeActQuantizer(4)
    a.calibrating = True
    a(torch.linspace(0, 3.0, 1001))
    a.finish_calibration(percentile=100.0)
    assert float(a.clip) == pytest.approx(3.0) and not a.signed
    a.calibrating = True
    a(torch.linspace(-2.0, 2.0, 1001))
    a.finish_calibration(percentile=100.0)
    assert a.signed and float(a.clip) == pytest.approx(2.0)
    y = a(torch.linspace(-3, 3, 50))
    assert len(torch.unique(y)) <= 15 and y.min() == pytest.approx(-2.0)


def test_export_mode_matches_training_mode():
    torch.manual_seed(0)
    w = torch.randn(5, 3, 3, 3)
    q = SymmetricWeightQuantizer(3, 5)
    wq = q(w)
    q.export_mode = True
    assert torch.allclose(q(wq), wq, atol=1e-6)  # grid values survive the 8-bit container
    a = RangeActQuantizer(3, clip=2.0)
    x = torch.randn(100) * 3
    ya = a(x)
    a.export_mode = True
    assert torch.allclose(a(x), ya, atol=1e-6)


def test_spec_round_trip():
    for q in (
        SymmetricWeightQuantizer(5, 4, per_channel=False, method="max"),
        DoReFaWeightQuantizer(3, 4, True),
        DoReFaWeightQuantizer(6, 4, False),
    ):
        assert weight_quantizer_from_spec(q.spec(), 4).spec() == q.spec()
    a = RangeActQuantizer(6, signed=True)
    assert act_quantizer_from_spec(a.spec()).spec() == a.spec()
    with pytest.raises(ValueError, match="known"):
        weight_quantizer_from_spec({"kind": "nope", "bits": 3}, 4)
