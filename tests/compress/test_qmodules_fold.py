"""Quantized layers, module swap round trip, BN folding onto the integer grid, export form."""

import copy

import pytest
import torch
from torch import nn

from edgefl.compress import export_metadata, prepare_for_export
from edgefl.compress.bn_fold import conv_bn_pairs, fold_batchnorm
from edgefl.compress.qmodules import (
    QConv2d,
    QLinear,
    calibrate_activations,
    float_weights,
    model_quant_specs,
    quantize_model,
)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.classifier = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.classifier(x.mean((2, 3)))


def _net():
    torch.manual_seed(0)
    net = Net()
    for bn in (net.bn1, net.bn2):
        bn.weight.data.uniform_(-1.5, 1.5)  # negative gammas flip the integer grid when folded
        bn.bias.data.uniform_(-0.3, 0.3)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.3, 2.0)
    return net.eval()


SPECS = {
    "conv2": {"w": {"kind": "symmetric", "bits": 4}, "a": {"kind": "range", "bits": 5}},
    "classifier": {"w": {"kind": "symmetric", "bits": 8}, "a": None},
}


def test_swap_keeps_weights_and_reports_bits():
    net = _net()
    w = net.conv2.weight.detach().clone()
    quantize_model(net, SPECS)
    assert isinstance(net.conv2, QConv2d) and isinstance(net.classifier, QLinear)
    assert torch.equal(net.conv2.weight, w)
    assert (net.conv2.w_bits, net.conv2.a_bits, net.classifier.a_bits) == (4, 5, 32)
    assert model_quant_specs(net)["conv2"]["a"] == {"kind": "range", "bits": 5, "signed": False}
    with pytest.raises(KeyError):
        quantize_model(_net(), {"nope": SPECS["conv2"]})


def test_float_weights_stage_quantizes_activations_only_and_restores():
    net = quantize_model(_net(), SPECS)
    x = torch.randn(2, 1, 6, 6)
    conv = net.conv2
    h = torch.relu(net.bn1(net.conv1(x)))
    with torch.no_grad():
        full = conv(h)
        with float_weights(net):
            act_only = conv(h)
            expect = nn.functional.conv2d(conv.act_quant(h), conv.weight, padding=1)
            none = nn.functional.conv2d(h, conv.weight, padding=1)
        again = conv(h)
    assert torch.allclose(act_only, expect)  # float weights on the quantized input
    assert not torch.allclose(act_only, none)  # the input is still quantized
    assert not torch.allclose(act_only, full)  # and the weights were quantized before
    assert torch.equal(again, full) and conv.w_bits == 4  # restored on exit


def test_state_dict_round_trip_through_specs():
    net = quantize_model(_net(), SPECS)
    calibrate_activations(net, [torch.randn(8, 1, 6, 6)])
    fresh = quantize_model(_net(), model_quant_specs(net))
    fresh.load_state_dict(net.state_dict(), strict=True)
    x = torch.randn(4, 1, 6, 6)
    assert torch.equal(fresh.eval()(x), net.eval()(x))


def test_conv_bn_pairs():
    assert conv_bn_pairs(quantize_model(_net(), SPECS)) == [("conv1", "bn1"), ("conv2", "bn2")]


def test_fold_keeps_function_and_integer_grid():
    net = quantize_model(_net(), SPECS)
    calibrate_activations(net, [torch.randn(8, 1, 6, 6)])
    x = torch.randn(16, 1, 6, 6)
    ref = net(x)
    folded = fold_batchnorm(copy.deepcopy(net))
    assert isinstance(folded.bn2, nn.Identity)
    assert (folded(x) - ref).abs().max() < 1e-4
    q = folded.conv2.weight_quant
    ints = folded.conv2.weight.detach() / q.scale.view(-1, 1, 1, 1)
    assert torch.allclose(ints, torch.round(ints), atol=1e-3) and ints.abs().max() <= 7 + 1e-3
    assert torch.all(q.scale > 0)


def test_prepare_for_export_is_a_copy_in_export_mode():
    net = quantize_model(_net(), SPECS)
    calibrate_activations(net, [torch.randn(8, 1, 6, 6)])
    x = torch.randn(16, 1, 6, 6)
    exp = prepare_for_export(net)
    assert exp is not net and isinstance(net.bn2, nn.BatchNorm2d)
    assert exp.conv2.weight_quant.export_mode and exp.conv2.act_quant.export_mode
    assert (exp(x) - net(x)).abs().max() < 1e-4
    assert export_metadata(net) == {"edgefl.bits.conv2": "w4a5", "edgefl.bits.classifier": "w8a32"}


def test_float_models_pass_through_unfolded():
    net = _net()
    exp = prepare_for_export(net)
    assert exp is not net and isinstance(exp.bn1, nn.BatchNorm2d) and not exp.training
    x = torch.randn(2, 1, 6, 6)
    assert torch.equal(exp(x), net(x))
