"""BatchNorm folding and the export form of quantized layers.

``conv_bn_pairs(model)`` finds every Conv2d whose only consumer is a BatchNorm2d (torch.fx trace with
the quantized wrappers as leaves). ``fold_batchnorm(model)`` folds those BNs into the convs in place:
float convs get ``W·γ/σ`` and a bias; quantized convs keep their integer grid and move BN into the
per-output-channel scale (``s_c = s·|γ_c|/σ_c``, integers negated where ``γ_c < 0``), so the folded
weight is still exactly on a per-channel symmetric grid, as ONNX Q/DQ export of the quantized layers
needs.

``export_form(model)`` then puts every quantizer in export mode: weights become grid values with
constant per-channel scales (8-bit container), activations get Clip + 8-bit Q/DQ.
"""

from __future__ import annotations

import torch
import torch.fx as fx
from torch import nn

from edgefl.compress.qmodules import QConv2d, QLinear, quant_layers
from edgefl.compress.quant import SymmetricWeightQuantizer


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m, qualname):
        return isinstance(m, (QConv2d, QLinear)) or super().is_leaf_module(m, qualname)


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv name, bn name) for every Conv2d whose output feeds only a BatchNorm2d."""
    graph = _Tracer().trace(model)
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0]
        if (
            isinstance(src, fx.Node)
            and src.op == "call_module"
            and isinstance(modules.get(src.target), nn.Conv2d)
            and len(src.users) == 1
        ):
            pairs.append((src.target, node.target))
    return pairs


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _fit_int8(ints: torch.Tensor, scale: torch.Tensor):
    """Halve the grid until it fits the int8 container (lossy; only 8-bit DoReFa weights need it)."""
    while ints.abs().max() > 127:
        ints, scale = torch.round(ints / 2), scale * 2
    return ints, scale


def _export_weight_quantizer(bits: int, scale: torch.Tensor) -> nn.Module:
    q = SymmetricWeightQuantizer(bits, scale.shape[0])
    q.scale.copy_(scale)
    q.export_mode = True
    return q


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every conv→BN pair in place (BN replaced by Identity); returns ``model`` in eval mode."""
    model.eval()
    modules = dict(model.named_modules())
    for conv_name, bn_name in conv_bn_pairs(model):
        conv, bn = modules[conv_name], modules[bn_name]
        inv = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # γ/σ
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = (bias - bn.running_mean) * inv + bn.bias
        if isinstance(conv, QConv2d) and conv.w_bits < 32:
            ints, scale = conv.weight_quant.grid(conv.weight)
            ints = ints * torch.sign(inv).view(-1, 1, 1, 1)
            ints, scale = _fit_int8(ints, scale * inv.abs())
            conv.weight.copy_(ints * scale.view(-1, 1, 1, 1))
            conv.weight_quant = _export_weight_quantizer(conv.w_bits, scale)
        else:
            conv.weight.mul_(inv.view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(new_bias.clone())
        _set(model, bn_name, nn.Identity())
    return model


@torch.no_grad()
def export_form(model: nn.Module) -> nn.Module:
    """Put every quantizer of ``model`` in export mode in place (weights on their grid, 8-bit containers)."""
    for layer in quant_layers(model).values():
        if layer.w_bits < 32 and not layer.weight_quant.export_mode:
            ints, scale = _fit_int8(*layer.weight_quant.grid(layer.weight))
            layer.weight.copy_(ints * scale.view((-1,) + (1,) * (layer.weight.dim() - 1)))
            layer.weight_quant = _export_weight_quantizer(layer.w_bits, scale)
        if layer.act_quant is not None:
            layer.act_quant.export_mode = True
    return model


def bits_metadata(model: nn.Module) -> dict[str, str]:
    """ONNX metadata_props entries ``edgefl.bits.<layer>`` = ``"w{b}a{b}"`` for every quantized layer."""
    return {f"edgefl.bits.{name}": f"w{m.w_bits}a{m.a_bits}" for name, m in quant_layers(model).items()}
