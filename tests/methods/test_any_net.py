"""GHOST and PIC-PQ on nets that are not the zoo's: GHOST quantizes each conv's input at its producer's
bits (traced), signed where it goes negative; both name what they leave in float or whole."""

import numpy as np
import torch
from torch import nn

from edgefl.compress.method import ClassifierData
from edgefl.compress.qmodules import QConv2d
from edgefl.data import ArrayData
from edgefl.ghost import GhostSettings
from edgefl.ghost import plan as ghost_plan
from edgefl.ghost.student import chain_inputs, conv_inputs, ghost_layer_specs, quantized_twin
from edgefl.models import build_model
from edgefl.picpq import PicpqSettings
from edgefl.picpq import plan as picpq_plan


def _bits(model, start=2):
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return {n: start + i % 6 for i, n in enumerate(convs)}


def _x(shape=(1, 28, 28), n=16):
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(0))


def test_resnet_specs_are_those_of_the_chain_rule():
    """Option-A ResNet-20 (the benchmarked one): tracing changes nothing — each block's convs follow in
    execution order and every input is post-ReLU (unsigned)."""
    model = build_model("resnet20", in_channels=1, num_classes=10).eval()
    bits = _bits(model)
    assert ghost_layer_specs(bits, conv_inputs(model, bits, _x())) == ghost_layer_specs(bits)


def test_an_option_b_shortcut_reads_the_block_input_not_the_conv_defined_before_it():
    model = build_model("resnet20", in_channels=1, num_classes=10, shortcut="B").eval()
    bits = _bits(model)
    inputs = conv_inputs(model, bits, _x())
    assert inputs["layer2.0.shortcut.0"] == ["layer1.2.conv2", False]
    assert chain_inputs(bits)["layer2.0.shortcut.0"][0] == "layer2.0.conv2"  # what definition order says
    specs = ghost_layer_specs(bits, inputs)
    assert specs["layer2.0.shortcut.0"]["a"]["bits"] == bits["layer1.2.conv2"]


def test_gates_concatenations_and_signed_inputs(fixture_model):
    model = fixture_model("se_concat_net").eval()
    bits = _bits(model)
    inputs = conv_inputs(model, bits, _x())
    assert inputs["stem.wide.0"] == [None, True] and inputs["stem.point.0"][0] is None  # the image
    assert inputs["body.0"] == ["stem.point.0", True]  # the concatenation's last branch; SiLU goes below 0
    assert inputs["body.3.expand"] == ["body.3.reduce", False]  # after a ReLU
    # x * sigmoid(gate): the features are body.0's; the gate's 1×1 output only scales them
    assert inputs["body.4"] == ["body.0", True]
    student = quantized_twin(model, bits, inputs)
    body4 = student.get_submodule("body.4")
    assert isinstance(body4, QConv2d) and body4.act_quant.signed and body4.a_bits == bits["body.0"]
    assert student.get_submodule("stem.wide.0").act_quant is None


def test_a_mobilenet_linear_bottleneck_is_quantized_signed(fixture_model):
    model = fixture_model("mobilenet_hs").eval()
    bits = _bits(model)
    inputs = conv_inputs(model, bits, _x())
    # block 2 adds its input (block 1's projection, no activation) to its own projection
    assert inputs["blocks.2.block.0.0"] == ["blocks.1.block.2.0", True]
    assert inputs["blocks.1.block.1.0"] == ["blocks.1.block.0.0", True]  # depthwise after Hardswish


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [ArrayData(rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n))
              for _ in range(2)]
    return ClassifierData(*arrays, {"scale": 1.0, "mean": [0.5], "std": [0.5]})


def test_what_a_method_cannot_take_is_named_and_left_float_or_whole(fixture_model):
    model, data = fixture_model("odd_net").eval(), _data()
    left = {"smooth", "spare"}  # a Conv1d along the channels; a conv never called
    plan = ghost_plan(model, data, GhostSettings(uniform_bits=4, epochs=1, seed=0))
    assert set(plan["left_float"]) == left and "spare" not in plan["bits"]
    assert "Conv1d smooth" in plan["left_float"]["smooth"] and "left in float" in plan["left_float"]["smooth"]
    small = PicpqSettings(population=1, sample=1, generations=0, tau_hat=1, rank_images=16, flops_target=0.8)
    plan = picpq_plan(model, data, small.check())
    assert set(plan["left_float"]) == left and "spare" not in plan["bits"]
    assert set(plan["not_pruned"]) == {"stem.0", "grouped.0", "mix.0"}
    assert "grouped convolution grouped.0" in plan["not_pruned"]["stem.0"]
    assert set(plan["prune"]["pruned"]) <= {"down.0"} and plan["prune"]["layout"] == "graph"
    assert plan["bits"]["stem.0"] == 32  # the stem stays float (B_max 32)
