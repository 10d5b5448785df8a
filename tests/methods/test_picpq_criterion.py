"""PIC-PQ criterion pieces: rank property, affine importance, global plan, quotas, bit rule."""

import functools

import numpy as np
import pytest
import torch
from torch import nn

from edgefl.compress.prune_plan import chain_units, global_prune_plan, layer_quota
from edgefl.picpq.criterion import (
    assign_bits,
    bits_from_ratio,
    break_rank_ties,
    filter_rank_property,
    importance,
    stage_max_bits,
)
from edgefl.compress.prune import apply_plan, layer_spatial, macs_from_plan, model_layout
from edgefl.errors import EdgeflError
from edgefl.models import build_model


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = build_model("resnet20", in_channels=1, num_classes=10).eval()
    layout = model_layout(model)
    widths = {
        n: (m.weight.shape[0], m.weight.shape[1])
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    }
    flops = functools.partial(
        macs_from_plan, layout, layer_spatial(model, (1, 16, 16)), widths
    )
    return model, layout, (lambda alive: flops(alive=alive))


def test_rank_property_range_and_zero_input(resnet):
    model, layout, _ = resnet
    fp = filter_rank_property(model, layout, [torch.rand(4, 1, 16, 16)])
    limits = {"conv1": 16, "layer1": 16, "layer2": 8, "layer3": 4}
    for name, ranks in fp.items():
        limit = limits[name.split(".")[0]]
        assert ranks.shape == (model.get_submodule(name).out_channels,)
        assert np.all(ranks >= 0) and np.all(ranks <= limit)
    # bias-free convs on a zero image give all-zero maps: rank exactly 0 in every layer
    zero = filter_rank_property(model, layout, [torch.zeros(2, 1, 16, 16)])
    assert all(np.all(v == 0) for v in zero.values())


def test_rank_property_by_hand():
    """A single 1x1 conv copying a rank-2 image: every filter's map has rank 2 (averaged: 2)."""
    from edgefl.compress.prune import LayerNode, Layout

    model = nn.Sequential(nn.Conv2d(1, 3, 1, bias=False))
    model[0].weight.data = torch.tensor([1.0, -2.0, 0.0]).view(3, 1, 1, 1)
    layout = Layout("hand", {"s": 3}, [LayerNode("0", (("s", 0), ("s", 1), ("s", 2)))])
    img = torch.zeros(1, 1, 5, 5)
    img[0, 0, 0, :] = 1.0
    img[0, 0, 2, 1] = 3.0  # two independent rows -> rank 2
    fp = filter_rank_property(model, layout, [img, torch.zeros(1, 1, 5, 5)])
    assert fp["0"].tolist() == [1.0, 1.0, 0.0]  # (2 + 0) / 2 images; the zero filter has rank 0


def test_importance_is_affine():
    assert importance(np.array([1.0, 2.0]), 3.0, -1.0).tolist() == [2.0, 5.0]


@pytest.mark.parametrize(
    "channels,safeguard,quota", [(16, 0.1, 14), (64, 0.1, 57), (4, 0.1, 2), (2, 0.1, 0), (10, 0.5, 5)]
)
def test_layer_quota(channels, safeguard, quota):
    assert layer_quota(channels, safeguard) == quota


def test_identity_transform_is_plain_global_rank_ordering(resnet):
    _, layout, _ = resnet
    rng = np.random.default_rng(0)
    fp = {
        c.name: rng.uniform(0, 8, c_out)
        for c, c_out in ((c, resnet[0].get_submodule(c.name).out_channels) for c in layout.convs)
    }
    ident = chain_units(layout, {n: importance(v, 1.0, 0.0) for n, v in fp.items()})
    plain = chain_units(layout, fp)
    assert [(u[1], u[2]) for u in ident] == [(u[1], u[2]) for u in plain]
    # chain scores are index-wise sums: unit g=30 covers stage-1 index 6, stage-2 index 14, stage-3 30
    res = {u[2]: u for u in plain if u[1] == "res"}
    chain = [(c, c.out[0][1]) for c in layout.convs if c.out[0][0] == "res"]  # (conv, offset in "res")
    expected = sum(fp[c.name][30 - off] for c, off in chain if 0 <= 30 - off < len(fp[c.name]))
    assert res[30][0] == pytest.approx(expected) and len(res[30][3]) == 10  # stem + 3 conv2 per stage
    assert [s for s, *_ in plain] == sorted(s for s, *_ in plain)


def test_rank_ties_broken_by_l1_without_reordering_distinct_ranks():
    """Mean ranks over 4 images move in steps of 0.25; the L1 term adds < 0.125 (worked by hand)."""
    ranks = {"c": np.array([7.0, 7.0, 7.0, 6.75, 7.25])}
    l1 = {"c": np.array([2.0, 4.0, 1.0, 4.0, 0.5])}
    out = break_rank_ties(ranks, l1, images=4)["c"]
    # eps = 0.5 / 4 = 0.125; term = 0.125 * l1 / 4
    assert out.tolist() == pytest.approx([7.0625, 7.125, 7.03125, 6.875, 7.265625])
    assert np.argsort(out).tolist() == [3, 2, 0, 1, 4]  # ties (0, 1, 2) by L1; 6.75 and 7.25 stay put
    assert np.all(out - ranks["c"] <= 0.5 / 4)  # at most half a rank step


def _scores(model, layout, value=1.0):
    return {c.name: np.full(model.get_submodule(c.name).out_channels, value) for c in layout.convs}


def test_plan_reaches_target_within_one_check_step(resnet):
    model, layout, flops = resnet
    rng = np.random.default_rng(1)
    scores = {n: v + rng.uniform(0, 1, len(v)) for n, v in _scores(model, layout).items()}
    full = flops({s: np.ones(n, bool) for s, n in layout.spaces.items()})
    plan, got = global_prune_plan(layout, scores, flops, 0.6, check_every=10)
    assert got < 0.6 * full
    # undo the last 10 pruned units in score order: the cost is back at or above the target
    pruned = {(s, g) for s, idx in plan["pruned"].items() for g in idx}
    order = [(u[1], u[2]) for u in chain_units(layout, scores) if (u[1], u[2]) in pruned]
    alive = {s: np.ones(n, bool) for s, n in layout.spaces.items()}
    for s, g in order[:-10]:
        alive[s][g] = False
    assert flops(alive) >= 0.6 * full
    # physically: chained layers keep equal widths and the model runs
    pruned_model = apply_plan(__import__("copy").deepcopy(model), plan)
    assert len({b.conv2.out_channels for b in pruned_model.layer3}) == 1
    assert pruned_model(torch.randn(1, 1, 16, 16)).shape == (1, 10)


def test_large_b_protects_a_layer_and_negative_b_prunes_it_to_the_floor(resnet):
    model, layout, flops = resnet
    rng = np.random.default_rng(2)
    fp = {n: rng.uniform(0, 4, len(v)) for n, v in _scores(model, layout).items()}
    target = "layer2.1.conv1"  # 32 filters in its own (non-chain) space
    shifted = {n: importance(v, 1.0, 1e6 if n == target else 0.0) for n, v in fp.items()}
    plan, _ = global_prune_plan(layout, shifted, flops, 0.5)
    assert "layer2.1.mid" not in plan["pruned"]
    shifted = {n: importance(v, 1.0, -1e6 if n == target else 0.0) for n, v in fp.items()}
    plan, _ = global_prune_plan(layout, shifted, flops, 0.9)
    assert len(plan["pruned"]["layer2.1.mid"]) == layer_quota(32, 0.1) == 28


@pytest.mark.parametrize("s,bits", [(1.0, 8), (0.5, 7), (0.1, 6), (0.2, 7), (1 / 6, 7), (0.16, 6), (0.01, 2)])
def test_bit_rule_by_hand(s, bits):
    # lambda = 1/6: s = 0.5 -> ceil(1/3) = 1; s = 0.1 -> ceil(1.67) = 2; s = 1/6 -> ceil(1) = 1; s = 0.16 -> 2
    assert bits_from_ratio(s, 8) == bits


def test_bit_rule_clamp_lambda_and_fp_stem():
    assert bits_from_ratio(0.5, 4, lam=1 / 5) == 3
    assert bits_from_ratio(0.05, 4) == 2  # 4 - ceil(3.33) = 0 -> clamped to 2
    assert bits_from_ratio(0.3, 32) == 32  # the stem stays FP
    assert assign_bits({"a": 1.0, "b": 0.5}, {"a": 6, "b": 6}) == {"a": 6, "b": 5}


def test_stage_max_bits(resnet):
    _, layout, _ = resnet
    mb = stage_max_bits(layout, [32, 8, 6, 4])
    assert (
        mb["conv1"] == 32
        and mb["layer1.2.conv2"] == 8
        and mb["layer2.0.conv1"] == 6
        and mb["layer3.1.conv1"] == 4
    )
    with pytest.raises(EdgeflError, match="4 stages .*32,4,4,4"):
        stage_max_bits(layout, [8, 6, 4])
    assert stage_max_bits(layout) == {n: 32 if n == "conv1" else 4 for n in mb}  # default: 4 bits per stage


def _bops_after(model, layout, flops, fp, keep, lam):
    import copy

    from edgefl.compress.bops import cost_report
    from edgefl.compress.qat import quant_specs
    from edgefl.compress.prune import layer_l1_ratio
    from edgefl.compress.qmodules import quantize_model

    plan, _ = global_prune_plan(layout, fp, flops, keep)
    pruned = apply_plan(copy.deepcopy(model), plan)
    names = [c.name for c in layout.convs]
    bits = assign_bits(layer_l1_ratio(model, pruned, names), stage_max_bits(layout, [32, 8, 6, 4]), lam)
    return cost_report(quantize_model(pruned, quant_specs(bits)), (1, 16, 16)).bops


def test_more_pruning_or_larger_lambda_never_lowers_the_bops_ratio(resnet):
    model, layout, flops = resnet
    fp = filter_rank_property(model, layout, [torch.rand(4, 1, 16, 16)])
    fp = {n: v + np.random.default_rng(0).uniform(0, 0.1, len(v)) for n, v in fp.items()}
    by_keep = [_bops_after(model, layout, flops, fp, keep, 1 / 6) for keep in (0.9, 0.7, 0.5, 0.3)]
    assert by_keep == sorted(by_keep, reverse=True)
    by_lam = [_bops_after(model, layout, flops, fp, 0.6, lam) for lam in (1 / 10, 1 / 6, 1 / 3, 1.0)]
    assert by_lam == sorted(by_lam, reverse=True) and by_lam[0] > by_lam[-1]
