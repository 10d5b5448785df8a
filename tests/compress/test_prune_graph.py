"""Pruning any conv net through Torch-Pruning's dependency graph: physical removal against the masked
oracle, the couplings it finds, what it leaves whole (by name), stages, and plans that replay."""

import copy
import json

import numpy as np
import pytest
import torch

from edgefl.compress.bops import cost_report
from edgefl.compress.graph import layers_left_float
from edgefl.compress.layout_graph import graph_layout
from edgefl.compress.prune import apply_plan, flops_counter, kept_indices, mask_channels, model_layout
from edgefl.compress.restore import compression_state
from edgefl.models import build_model

SHAPE = (1, 28, 28)


def _half(layout, seed=1):
    rng = np.random.default_rng(seed)
    return {s: sorted(rng.choice(n, n // 2, replace=False).tolist()) for s, n in layout.spaces.items()}


MODELS = {
    "mobilenet_hs": lambda build: build("mobilenet_hs"),
    "se_concat_net": lambda build: build("se_concat_net"),
    "odd_net": lambda build: build("odd_net"),
    "small_cnn": lambda _build: build_model("small_cnn"),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def traced(request, random_bn, fixture_model):
    model = random_bn(MODELS[request.param](fixture_model))
    return request.param, model, model_layout(model, SHAPE)


def test_physical_removal_equals_the_masked_model_and_costs_what_the_counter_says(traced):
    name, model, layout = traced
    assert layout.name == "graph" and layout.spaces, name
    pruned = _half(layout)
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        masked = mask_channels(copy.deepcopy(model), layout, pruned)(x)
        small = apply_plan(copy.deepcopy(model), layout.plan(pruned))
        physical = small(x)
        assert (masked - physical).abs().max() < 1e-5
        assert (model(x) - physical).abs().max() > 1e-3  # the plan changed the function
    _, flops = flops_counter(model, SHAPE)
    kept = kept_indices(layout, pruned)
    alive = {s: np.isin(np.arange(n), kept[s]) for s, n in layout.spaces.items()}
    assert flops(alive) == cost_report(small, SHAPE).macs < cost_report(model, SHAPE).macs


def test_a_plan_is_json_and_replays_on_a_fresh_model(traced, fixture_model):
    name, model, layout = traced
    plan = json.loads(json.dumps(layout.plan(_half(layout, seed=2))))
    assert plan["layout"] == "graph" and plan["input_shape"] == list(SHAPE) and plan["format"] == 1
    small = apply_plan(copy.deepcopy(model), plan)
    fresh = apply_plan(MODELS[name](fixture_model), plan)  # a checkpoint restore, then load_state_dict
    fresh.load_state_dict(small.state_dict(), strict=True)
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), small.eval()(x))


def test_mobilenet_couplings_come_from_the_graph(fixture_model):
    layout = model_layout(fixture_model("mobilenet_hs").eval(), SHAPE)
    convs = {c.name: c for c in layout.convs}
    chains = {s: [c.name for c in cs] for s, cs in layout.chains().items()}
    # the residual stream of width 16: the stem and the first block's projection (summed by its add)
    assert chains["stem.0"] == ["stem.0", "blocks.0.block.2.0"]
    # a depthwise conv carries its expand conv's channels; blocks 1 and 2 project onto one residual stream
    assert convs["blocks.1.block.1.0"].out == convs["blocks.1.block.0.0"].out
    assert convs["blocks.2.block.2.0"].out == convs["blocks.1.block.2.0"].out
    assert convs["blocks.1.block.1.0"].inp is None  # depthwise: one input channel per filter
    head = next(n for n in layout.linears if n.name == "classifier.1")
    assert head.inp == convs["last.0"].out and all(s is None for s, _ in head.out)  # classes stay
    assert not layout.fixed


def test_concatenation_and_gate_couplings(fixture_model):
    layout = model_layout(fixture_model("se_concat_net").eval(), SHAPE)
    convs = {c.name: c for c in layout.convs}
    assert convs["body.0"].inp == tuple(
        [("stem.wide.0", i) for i in range(12)] + [("stem.point.0", i) for i in range(12)]
    )
    # the squeeze-excitation gate multiplies body.0's channels: its expand conv holds the same space
    assert (
        convs["body.3.expand"].out == convs["body.0"].out
        and convs["body.3.reduce"].inp == convs["body.0"].out
    )
    assert {c.name: c.stage for c in layout.convs} == {
        "stem.wide.0": 0,
        "stem.point.0": 0,
        "body.0": 1,
        "body.3.reduce": 1,
        "body.3.expand": 1,
        "body.4": 2,
    }


def test_what_cannot_be_pruned_or_quantized_is_named_and_left_whole(fixture_model):
    model = fixture_model("odd_net").eval()
    layout = model_layout(model, SHAPE)
    assert "grouped.0 (groups=4)" in layout.fixed["grouped.0"] and "grouped.0" in layout.fixed["stem.0"]
    # the Conv1d slides along the pooled channels: removing mix.0's channels changes what it sees, which
    # the graph takes for element-wise; the masked-model oracle catches it
    assert "disagree" in layout.fixed["mix.0"]
    assert list(layout.spaces) == ["down.0"]
    assert layers_left_float(model, SHAPE) == {
        "smooth": "Conv1d smooth is not quantized (Conv2d and Linear are) — left in float",
        "spare": "Conv2d spare does not run in a forward pass — left in float",
    }


def test_the_oracle_catches_what_the_graph_gets_wrong_on_option_a_resnets(random_bn):
    """Why ResNets keep their own layout: the graph takes the zero-pad shortcut for element-wise."""
    model = random_bn(build_model("resnet20", in_channels=1, num_classes=10))
    layout = graph_layout(model, SHAPE)
    assert "disagree" in layout.fixed["conv1"]  # the whole residual stream is left whole
    assert model_layout(model).name == "cifar_resnet" and "res" in model_layout(model).spaces


def test_graph_stages_match_the_resnet_stages_and_option_b_prunes_exactly(random_bn):
    model = random_bn(build_model("resnet20", in_channels=1, num_classes=10, shortcut="B"))
    graph, cifar = graph_layout(model, SHAPE), model_layout(model)
    assert {c.name: c.stage for c in graph.convs} == {c.name: c.stage for c in cifar.convs}
    assert not graph.fixed and len(graph.spaces) == len(cifar.spaces)
    pruned = _half(graph)
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        masked = mask_channels(copy.deepcopy(model), graph, pruned)(x)
        assert (masked - apply_plan(copy.deepcopy(model), graph.plan(pruned))(x)).abs().max() < 1e-5


def test_a_checkpoint_with_a_graph_plan_restores(tmp_path, random_bn):
    from edgefl.checkpoint import load_checkpoint, save_checkpoint

    model = random_bn(build_model("small_cnn", num_classes=10))
    layout = model_layout(model, SHAPE)
    plan = layout.plan(_half(layout))
    small = apply_plan(copy.deepcopy(model), plan)
    config = {
        "model": "small_cnn",
        "model_args": {"num_classes": 10},
        "input_shape": list(SHAPE),
        "num_classes": 10,
        "compression": compression_state("test", plan, {}),
    }
    save_checkpoint(tmp_path / "ck", small, config)
    restored = load_checkpoint(tmp_path / "ck").model.eval()
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        assert torch.equal(restored(x), small(x))
