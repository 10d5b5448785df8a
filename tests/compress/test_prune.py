"""Residual-aware physical filter removal: masked vs pruned oracle, chain widths, restore round trip."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgefl.compress.layout_resnet import ChannelPadShortcut
from edgefl.compress.prune import (
    apply_plan,
    kept_indices,
    layer_l1_ratio,
    layer_spatial,
    macs_from_plan,
    mask_plan,
    model_layout,
)
from edgefl.compress.bops import cost_report
from edgefl.errors import EdgeflError
from edgefl.models import build_model


def _random_plan(layout, fraction=1 / 3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "layout": layout.name,
        "pruned": {
            s: sorted(rng.choice(n, int(n * fraction), replace=False).tolist())
            for s, n in layout.spaces.items()
        },
    }


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_masked_and_physically_pruned_outputs_identical(shortcut, random_bn):
    torch.manual_seed(0)
    model = random_bn(build_model("resnet20", in_channels=1, num_classes=10, shortcut=shortcut))
    layout = model_layout(model)
    plan = _random_plan(layout)
    x = torch.randn(3, 1, 28, 28)
    masked = mask_plan(copy.deepcopy(model), plan)(x)
    pruned_model = apply_plan(copy.deepcopy(model), plan)
    pruned = pruned_model(x)
    assert (masked - pruned).abs().max() < 1e-5
    assert (model(x) - pruned).abs().max() > 1e-3  # the plan really changed the function
    assert cost_report(pruned_model, (1, 28, 28)).macs < cost_report(model, (1, 28, 28)).macs


def test_option_a_chain_widths_and_pad_widths():
    model = build_model("resnet20", in_channels=1, num_classes=10).eval()
    layout = model_layout(model)
    assert layout.spaces["res"] == 64
    # stage 1 sits at offset 24, stage 2 at 16 (symmetric zero padding 16->32->64)
    offsets = {c.name: c.out[0][1] for c in layout.convs}
    assert offsets["conv1"] == 24 and offsets["layer2.1.conv2"] == 16 and offsets["layer3.2.conv2"] == 0
    plan = {"layout": "cifar_resnet", "pruned": {"res": [0, 1, 20, 30, 50], "layer1.0.mid": [3]}}
    apply_plan(model, plan)
    # residual chain: stage 1 keeps 16 - 1 (30 -> local 6), stage 2 keeps 32 - 2 (20, 30), stage 3 keeps 59
    assert model.conv1.out_channels == 15
    assert all(b.conv2.out_channels == 15 for b in model.layer1)
    assert all(b.conv2.out_channels == 30 for b in model.layer2)
    assert all(b.conv2.out_channels == 59 for b in model.layer3)
    assert model.layer1[0].conv1.out_channels == 15 and model.layer1[0].conv2.in_channels == 15
    assert model.classifier.in_features == 59
    sc = model.layer2[0].shortcut
    assert isinstance(sc, ChannelPadShortcut)
    # stage-2 window [16, 48) keeps 30: below stage 1's [24, 40): 16..23 minus 20 = 7; above: 40..47 = 8
    assert (sc.before, sc.after) == (7, 8)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_macs_from_plan_matches_counter():
    model = build_model("resnet20", in_channels=1, num_classes=10).eval()
    layout = model_layout(model)
    plan = _random_plan(layout, 0.4, seed=3)
    widths = {
        n: (m.weight.shape[0], m.weight.shape[1])
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    }
    kept = kept_indices(layout, plan["pruned"])
    alive = {s: np.isin(np.arange(n), kept[s]) for s, n in layout.spaces.items()}
    analytic = macs_from_plan(layout, layer_spatial(model, (1, 28, 28)), widths, alive)
    assert analytic == cost_report(apply_plan(copy.deepcopy(model), plan), (1, 28, 28)).macs


def test_l1_ratio_by_hand():
    a = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False))
    b = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False))
    a[0].weight.data = torch.tensor([1.0, -3.0]).view(2, 1, 1, 1)
    b[0].weight.data = torch.tensor([-3.0]).view(1, 1, 1, 1)
    assert layer_l1_ratio(a, b, ["0"]) == {"0": pytest.approx(0.75)}


def test_a_plan_of_an_unknown_layout_or_another_architecture_is_refused():
    model = build_model("resnet20", in_channels=1, num_classes=10)
    with pytest.raises(EdgeflError, match="unknown"):
        apply_plan(model, {"layout": "mystery", "pruned": {}})
    with pytest.raises(EdgeflError, match="cifar_resnet"):
        apply_plan(build_model("small_cnn"), {"layout": "cifar_resnet", "pruned": {"res": [0]}})
