"""Quantized Conv2d / Linear that carry their bit widths, and the module swap.

``QConv2d`` / ``QLinear`` subclass ``nn.Conv2d`` / ``nn.Linear`` (same ``weight``/``bias`` keys in the
state dict) and add ``weight_quant`` (always) and ``act_quant`` (optional, applied to the layer's
*input*). ``w_bits`` / ``a_bits`` are the bits the BOPs accountant reads (``a_bits`` = 32 when the input
is not quantized).

``layer_spec(module)`` / ``quantize_model(model, specs)`` are the JSON round trip used by checkpoints:
``{"layer1.0.conv1": {"w": {"kind": "symmetric", "bits": 4, ...}, "a": {"kind": "range", "bits": 4,
"signed": false} or None}}``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
import torch.nn.functional as F

from edgefl.compress.quant import FULL_PRECISION_BITS, act_quantizer_from_spec, weight_quantizer_from_spec


class _QuantMixin:
    weight_quant: nn.Module
    act_quant: nn.Module | None

    @property
    def w_bits(self) -> int:
        return int(self.weight_quant.bits)

    @property
    def a_bits(self) -> int:
        return int(self.act_quant.bits) if self.act_quant is not None else FULL_PRECISION_BITS

    def quant_spec(self) -> dict:
        return {"w": self.weight_quant.spec(), "a": None if self.act_quant is None else self.act_quant.spec()}

    def _quant_input(self, x):
        return x if self.act_quant is None else self.act_quant(x)


class QConv2d(_QuantMixin, nn.Conv2d):
    """Conv2d with weight fake-quant and optional input-activation fake-quant."""

    def forward(self, x):
        return self._conv_forward(self._quant_input(x), self.weight_quant(self.weight), self.bias)


class QLinear(_QuantMixin, nn.Linear):
    """Linear with weight fake-quant and optional input-activation fake-quant."""

    def forward(self, x):
        return F.linear(self._quant_input(x), self.weight_quant(self.weight), self.bias)


def _clone_as(module: nn.Module, spec: dict) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        q = QConv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            module.groups,
            module.bias is not None,
            module.padding_mode,
        )
    elif isinstance(module, nn.Linear):
        q = QLinear(module.in_features, module.out_features, module.bias is not None)
    else:
        raise TypeError(f"cannot quantize {type(module).__name__}; only Conv2d and Linear")
    q = q.to(module.weight.device, module.weight.dtype)
    with torch.no_grad():
        q.weight.copy_(module.weight)
        if module.bias is not None:
            q.bias.copy_(module.bias)
    q.weight_quant = weight_quantizer_from_spec(spec["w"], q.weight.shape[0])
    q.act_quant = None if spec.get("a") is None else act_quantizer_from_spec(spec["a"])
    q.train(module.training)
    return q


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def quantize_model(model: nn.Module, specs: dict[str, dict]) -> nn.Module:
    """Swap the named Conv2d/Linear layers for QConv2d/QLinear in place (weights kept).

    Args:
        model: the float (possibly pruned) model.
        specs: layer name -> {"w": weight quantizer spec, "a": activation quantizer spec or None}.
    Returns:
        the same model object.
    """
    names = dict(model.named_modules())
    missing = sorted(set(specs) - set(names))
    if missing:
        raise KeyError(f"layers not in the model: {missing}")
    for name, spec in specs.items():
        _set_submodule(model, name, _clone_as(names[name], spec))
    return model


@contextlib.contextmanager
def float_weights(model: nn.Module):
    """Within the block every quantized layer uses its float weight (input activations stay
    quantized): the activation-only QAT stage. The weight quantizers come back on exit."""
    layers = quant_layers(model).values()
    saved = [m.weight_quant for m in layers]
    try:
        for m in layers:
            m.weight_quant = nn.Identity()
        yield model
    finally:
        for m, q in zip(layers, saved):
            m.weight_quant = q


def quant_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Name -> QConv2d/QLinear for every quantized layer of ``model``."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (QConv2d, QLinear))}


def model_quant_specs(model: nn.Module) -> dict[str, dict]:
    """Name -> quantizer spec of every quantized layer (what ``quantize_model`` takes back)."""
    return {n: m.quant_spec() for n, m in quant_layers(model).items()}


@torch.no_grad()
def calibrate_activations(model: nn.Module, batches, percentile: float = 99.99) -> None:
    """Set every calibratable activation quantizer's clip range from a few input batches.

    Args:
        model: model holding ``RangeActQuantizer`` modules (DoReFa ones with fixed clip 1.0 are skipped
            by setting ``calibrate=False`` on them).
        batches: iterable of input tensors (already normalised).
        percentile: percentile of |x| used as the clip value.
    """
    acts = [
        m.act_quant
        for m in quant_layers(model).values()
        if m.act_quant is not None and getattr(m.act_quant, "calibrate", True)
    ]
    was_training = model.training
    model.eval()
    for a in acts:
        a.calibrating = True
    for x in batches:
        model(x)
    for a in acts:
        a.finish_calibration(percentile)
    model.train(was_training)
