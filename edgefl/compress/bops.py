"""The one BOPs / model-size accountant used by every method, the export summary and the reports.

Definitions (those of PIC-PQ, Xie et al., arXiv 2312.00851, 2023, and GHOST, Zhang et al., IEEE TGRS
2023, arXiv 2301.00131, as their papers' BOPs counters define them):
- MACs of a conv = H_out · W_out · C_out · (C_in / groups) · k_h · k_w (no bias term); of a Linear =
  in · out. Counted from a batch-1 forward pass, so pruned widths are whatever the model holds.
- BOPs of a layer = MACs · b_w · b_a. ``b_w`` = the layer's weight bits (32 if not quantized).
  ``b_a`` depends on ``act_rule``:
    * ``"own"`` (PIC-PQ, default): b_a = b_w, the layer's own bit width. Unquantized layers (the 32-bit
      stem, the FP classifier) count 32 · 32.
    * ``"input"``: the bits of the quantizer on the layer's input (32 if none) — what actually runs.
    * ``"previous"`` (GHOST): the bits of the previous conv/linear in definition order; the first
      layer's input is 32-bit.
- BN, pooling, adds and activations are free.
- Size (bits) = Σ_conv/linear weights · b_w + biases · 32 + BN affine (γ, β) · 32. Report bytes = bits / 8.
  The int8 container of the ONNX file is larger for sub-8-bit layers: this size is theoretical.
- Ratios are FP reference (same architecture unpruned, everything 32-bit) over the compressed model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from edgefl.compress.quant import FULL_PRECISION_BITS

ACT_RULES = ("own", "input", "previous")


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str  # "conv" | "linear"
    in_channels: int
    out_channels: int
    macs: int
    params: int  # weights + bias
    w_bits: int
    a_bits: int
    bops: int
    size_bits: int


@dataclass
class CostReport:
    layers: list[LayerCost] = field(default_factory=list)
    other_bits: int = 0  # BN affine parameters at FP32

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def bops(self) -> int:
        return sum(layer.bops for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers) + self.other_bits // FULL_PRECISION_BITS

    @property
    def size_bytes(self) -> float:
        return (sum(layer.size_bits for layer in self.layers) + self.other_bits) / 8

    def to_dict(self) -> dict:
        return {
            "macs": self.macs,
            "bops": self.bops,
            "params": self.params,
            "size_bytes": self.size_bytes,
            "layers": [asdict(layer) for layer in self.layers],
        }


def _layer_bits(module: nn.Module) -> tuple[int, int]:
    w = int(getattr(module, "w_bits", FULL_PRECISION_BITS))
    a = int(getattr(module, "a_bits", FULL_PRECISION_BITS))
    return w, a


def _record_shapes(model: nn.Module, input_shape) -> dict[str, tuple]:
    """Run one batch-1 forward and return name -> output shape of every Conv2d/Linear."""
    shapes, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(
                m.register_forward_hook(lambda mod, inp, out, n=name: shapes.__setitem__(n, out.shape))
            )
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(input_shape), dtype=param.dtype, device=param.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return shapes


def _macs(module: nn.Module, out_shape) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return int(
            out_shape[2]
            * out_shape[3]
            * module.out_channels
            * (module.in_channels // module.groups)
            * kh
            * kw
        )
    return int(module.in_features * module.out_features)


def cost_report(
    model: nn.Module, input_shape, act_rule: str = "own", full_precision: bool = False
) -> CostReport:
    """Per-layer MACs, bits, BOPs and size of ``model`` for one input of ``input_shape`` ([C, H, W]).

    Args:
        model: float or quantized (QConv2d/QLinear) model, pruned or not.
        input_shape: input shape without the batch dimension.
        act_rule: how activation bits are chosen: "own" (PIC-PQ), "input" or "previous" (GHOST).
        full_precision: count every layer at 32/32 (the FP reference of the same architecture).
    Returns:
        a CostReport.
    """
    if act_rule not in ACT_RULES:
        raise ValueError(f"unknown act_rule {act_rule!r}; use one of {ACT_RULES}")
    shapes = _record_shapes(model, input_shape)
    report, prev_bits = CostReport(), FULL_PRECISION_BITS
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) and m.affine:
            report.other_bits += 2 * m.num_features * FULL_PRECISION_BITS
        if name not in shapes:
            continue
        w_bits, in_bits = (FULL_PRECISION_BITS, FULL_PRECISION_BITS) if full_precision else _layer_bits(m)
        a_bits = {"own": w_bits, "input": in_bits, "previous": prev_bits}[act_rule]
        prev_bits = w_bits
        macs = _macs(m, shapes[name])
        n_w = m.weight.numel()
        n_b = m.bias.numel() if m.bias is not None else 0
        report.layers.append(
            LayerCost(
                name=name,
                kind="conv" if isinstance(m, nn.Conv2d) else "linear",
                in_channels=m.weight.shape[1] * (m.groups if isinstance(m, nn.Conv2d) else 1),
                out_channels=m.weight.shape[0],
                macs=macs,
                params=n_w + n_b,
                w_bits=w_bits,
                a_bits=a_bits,
                bops=macs * w_bits * a_bits,
                size_bits=n_w * w_bits + n_b * FULL_PRECISION_BITS,
            )
        )
    return report


def compression_summary(reference: CostReport, compressed: CostReport) -> dict:
    """Totals and ratios (reference / compressed) for reports and JSON output."""
    return {
        "params": compressed.params,
        "params_ref": reference.params,
        "size_bytes": compressed.size_bytes,
        "size_bytes_ref": reference.size_bytes,
        "size_ratio": reference.size_bytes / compressed.size_bytes,
        "macs": compressed.macs,
        "macs_ref": reference.macs,
        "bops": compressed.bops,
        "bops_ref": reference.bops,
        "bops_ratio": reference.bops / compressed.bops,
        "size_definition": "sum(weights*w_bits) + biases and BN affine at 32 bits; bytes = bits/8",
    }
