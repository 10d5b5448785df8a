"""GHOST cost figures from the shared accountant (``bops.py``): size, BOPs, ratios, per-layer rows.

Definition used for every GHOST number: ``act_rule="input"`` — a layer's activation bits are those of
the quantizer on its input, which GHOST sets to the previous conv's bits (ghost.md §3's rule); the
first conv sees the 32-bit image and the FP32 classifier counts 32 × 32. Size: weights × their bits,
biases and BN affine parameters at 32 bits (theoretical: an int8 container stores sub-8-bit weights
at 8 bits). Ratios are over the same architecture at 32/32.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

ACT_RULE = "input"


def size_and_bops(reference: nn.Module, compressed: nn.Module, input_shape: Sequence[int]) -> dict:
    """Totals and ratios of ``compressed`` against ``reference`` counted at full precision."""
    from edgefl.compress.bops import compression_summary, cost_report

    ref = cost_report(reference, input_shape, act_rule=ACT_RULE, full_precision=True)
    got = cost_report(compressed, input_shape, act_rule=ACT_RULE)
    summary = compression_summary(ref, got)
    summary["bops_definition"] = "sum MACs * w_bits * a_bits; a_bits = input quantizer bits (32 if none)"
    return summary


def layer_rows(compressed: nn.Module, input_shape: Sequence[int]) -> list[dict]:
    """Per-layer name, kind, weight/activation bits, MACs, params and BOPs (for the CLI table)."""
    from edgefl.compress.bops import cost_report

    return [
        {
            "layer": c.name,
            "kind": c.kind,
            "w_bits": c.w_bits,
            "a_bits": c.a_bits,
            "params": c.params,
            "macs": c.macs,
            "bops": c.bops,
        }
        for c in cost_report(compressed, input_shape, act_rule=ACT_RULE).layers
    ]
