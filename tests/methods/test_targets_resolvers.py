"""The per-method target resolvers: PIC-PQ's B_max/keep and GHOST's tau from a BOPs/size budget.

Oracles: the predicted cost of a plan equals what ``edgefl.compress.report.totals`` counts on the model
actually pruned and quantized by that plan; hand-computed costs for GHOST's activation rule; the
one-line refusals; the back-off steps.
"""

import numpy as np
import pytest
import torch

from edgefl.compress.targets import LayerCost, Target, layer_costs
from edgefl.errors import EdgeflError
from edgefl.ghost import GhostSettings
from edgefl.ghost import targets as gt
from edgefl.ghost.bits import LayerDistortion
from edgefl.models import build_model
from edgefl.picpq import PicpqSettings
from edgefl.picpq import targets as pt

SHAPE = [1, 28, 28]


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_model("resnet20", in_channels=1, num_classes=10).eval()


@pytest.fixture(scope="module")
def costs(resnet):
    from edgefl.compress.prune import flops_counter

    layout, flops_fn = flops_counter(resnet, SHAPE)
    return pt.CostModel(resnet, layout, flops_fn, SHAPE, PicpqSettings())


def _l1_scores(model, costs):
    from edgefl.compress.prune import l1_filter_scores

    return l1_filter_scores(model, costs.layout)


def test_picpq_predicted_cost_is_what_the_report_counts(resnet, costs):
    import copy

    from edgefl.compress.prune import apply_plan
    from edgefl.compress.qat import quantize_for_qat
    from edgefl.compress.report import totals

    scores = _l1_scores(resnet, costs)
    bops, size, bits = costs.cost(scores, 0.7, (32, 6, 5, 4))
    plan = costs._prune(scores, 0.7, "identity")[0]
    model = apply_plan(copy.deepcopy(resnet), plan)
    quantize_for_qat(model, bits, torch.randn(8, *SHAPE))
    t = totals(resnet, model, SHAPE, 1.0, 1.0, "own")
    assert (t["bops"], t["size_bytes"]) == (bops, size)
    assert bits["conv1"] == 32 and min(bits.values()) >= 3


def test_picpq_resolves_the_gentlest_knobs_that_meet_the_budget(resnet, costs):
    target = Target(bops_ratio=50)
    budget = pt.check_reachable(resnet, SHAPE, target, 32, 3, 0.1)
    knobs = pt.resolve_knobs(costs, _l1_scores(resnet, costs), budget, target, 32)
    assert knobs["predicted_bops"] <= budget.bops
    b = knobs["max_bits"][1]
    assert knobs["max_bits"] == (32, b, b, b) and pt.KEEP_LIGHT <= knobs["flops_target"] <= pt.KEEP_MAX
    if b < pt.TOP_BITS:  # one bit more per stage misses the budget even with the most light pruning
        assert (
            costs.cost(_l1_scores(resnet, costs), pt.KEEP_LIGHT, (32, b + 1, b + 1, b + 1))[0] > budget.bops
        )
    small = Target(size_bytes=60_000)
    knobs = pt.resolve_knobs(costs, _l1_scores(resnet, costs), small.budget(1.0, 1e9), small, 32)
    assert knobs["predicted_size_bytes"] <= 60_000


@pytest.mark.parametrize(
    "target,needle",
    [(Target(bops_ratio=1e5), "--target-bops"), (Target(size_bytes=2000), "--target-size 2000 bytes")],
)
def test_picpq_refuses_what_no_width_and_bits_can_reach(resnet, target, needle):
    with pytest.raises(EdgeflError, match=needle):
        pt.check_reachable(resnet, SHAPE, target, 32, 3, 0.1)


def test_picpq_back_off_trains_longer_with_a_cost_target_and_relaxes_without():
    s = PicpqSettings(ft_epochs=1, qat_epochs=1)
    plan = {"knobs": {"max_bits": [32, 4, 4, 4], "flops_target": 0.9}, "epochs": (1, 1)}
    more, same_plan = pt.back_off(s, plan, 2, Target(bops_ratio=50, max_drop=0.5))
    assert (more.ft_epochs, more.qat_epochs) == (3, 3) and same_plan["knobs"]["ft_epochs"] == 3
    gentler, replan = pt.back_off(s, plan, 1, Target(max_drop=0.5))
    assert (
        gentler.max_bits == (32, 5, 5, 5) and gentler.flops_target == pytest.approx(0.95) and replan is None
    )
    top = {"knobs": {"max_bits": [32, 8, 8, 8], "flops_target": 1.0}, "epochs": (1, 1)}
    assert pt.back_off(s, top, 1, Target(max_drop=0.5)) is None


def _convs(model):
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]


def test_ghost_cost_counts_inputs_at_the_previous_conv_bits():
    layers = [
        LayerCost("c1", "conv", 100, 10, 0),
        LayerCost("c2", "conv", 200, 20, 0),
        LayerCost("fc", "linear", 10, 10, 10),
    ]
    bops, size = gt.ghost_cost(layers, 0, {"c1": 4, "c2": 2})
    assert bops == 100 * 4 * 32 + 200 * 2 * 4 + 10 * 32 * 32
    assert size == (10 * 4 + 20 * 2 + 10 * 32 + 10 * 32) / 8
    traced = {"c1": [None, False], "c2": [None, False]}  # c2 reads a float layer's output: 32-bit input
    assert gt.ghost_cost(layers, 0, {"c1": 4, "c2": 2}, traced)[0] == 100 * 4 * 32 + 200 * 2 * 32 + 10 * 1024


def test_ghost_predicted_cost_is_what_the_report_counts(resnet):
    from edgefl.compress.report import totals
    from edgefl.ghost.student import quantized_twin

    settings = GhostSettings(target_bops=40, target_size="6x")
    x = torch.randn(16, *SHAPE)
    bits, tau, inputs, knobs = gt.resolve_bits(resnet, SHAPE, settings, Target(40, None, 6.0), (), x)
    t = totals(resnet, quantized_twin(resnet, bits, inputs), SHAPE, 1.0, 1.0, "input")
    assert (t["bops"], t["size_bytes"]) == (knobs["predicted_bops"], knobs["predicted_size_bytes"])
    assert t["bops_ratio"] >= 40 and t["size_ratio"] >= 6 and knobs["tau"] == tau


def test_ghost_tau_is_the_smallest_threshold_that_fits():
    layers = [LayerCost("c1", "conv", 100, 10, 0), LayerCost("c2", "conv", 100, 10, 0)]
    tables = [
        LayerDistortion("c1", 10, {2: 5.0, 3: 1.0, 4: 0.1}),
        LayerDistortion("c2", 10, {2: 3.0, 3: 0.5, 4: 0.2}),
    ]
    full = gt.ghost_cost(layers, 0, {"c1": 4, "c2": 4})[0]
    budget = Target(bops_ratio=1.0).budget(full, 1e9)
    assert gt.tau_for_budget(tables, layers, 0, budget, (2, 4)) == pytest.approx(0.0)  # 4/4 fits: no squeeze
    cheaper = gt.ghost_cost(layers, 0, {"c1": 4, "c2": 3})[0]
    tau = gt.tau_for_budget(tables, layers, 0, Target(bops_ratio=1.0).budget(cheaper, 1e9), (2, 4))
    assert 0.5 < tau < 1.0  # the first threshold that takes c2 to 3 bits while c1 keeps 4


def test_ghost_refuses_below_one_bit_and_beyond_the_smallest_width(resnet):
    with pytest.raises(EdgeflError, match="bits per conv weight"):
        gt.check_reachable(resnet, SHAPE, Target(size_bytes=1000), (2, 8), _convs(resnet))
    with pytest.raises(EdgeflError, match=r"--target-bops 500 is out of reach: even every conv at 2 bits"):
        gt.check_reachable(resnet, SHAPE, Target(bops_ratio=500), (2, 8), _convs(resnet))
    budget, layers, other = gt.check_reachable(resnet, SHAPE, Target(bops_ratio=40), (2, 8), _convs(resnet))
    assert layers == layer_costs(resnet, SHAPE)[0] and np.isinf(budget.size_bytes)


def test_ghost_settings_refuse_a_cost_target_with_fixed_bits():
    with pytest.raises(EdgeflError, match="give the target or tau"):
        GhostSettings(target_bops=40, tau=0.1).check()
    with pytest.raises(EdgeflError, match="uniform_bits"):
        GhostSettings(target_size="10x", uniform_bits=4).check()
    assert GhostSettings(max_drop=1.0, tau=0.1).check()  # max_drop alone fixes nothing


def test_ghost_back_off_adds_a_mean_bit_or_trains_longer():
    s = GhostSettings(epochs=2)
    plan = {"knobs": {"mean_bits": 3.5, "tau": 100.0, "epochs": 2}, "epochs": 2}
    gentler, replan = gt.back_off(s, plan, 1, Target(max_drop=1.0))
    assert gentler.target_mean_bits == 4.5 and gentler.tau is None and replan is None
    longer, same = gt.back_off(s, plan, 2, Target(bops_ratio=40, max_drop=1.0))
    assert longer.epochs == 6 and same["knobs"]["epochs"] == 6
    assert (
        gt.back_off(s, {**plan, "knobs": {**plan["knobs"], "mean_bits": 8.0}}, 1, Target(max_drop=1)) is None
    )
