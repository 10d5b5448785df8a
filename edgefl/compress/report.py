"""The one per-layer row format and the one totals dict every method reports (from ``bops.py``).

Rows: ``layer, kind, out, in, w_bits, a_bits, params, macs, bops, bops_ref`` (``out``/``in`` as
"reference->compressed" channel widths, ``bops_ref`` the same layer at 32/32) plus any per-layer facts
the method adds (PIC-PQ: ``s_l1``, ``rank_mean``). Totals: ``bops.compression_summary`` plus the BOPs
definition used and accuracy before/after/drop. The reference is the same architecture unpruned at
32/32. ``act_rule`` says where a layer's activation bits come from (see ``bops.py``): PIC-PQ counts a
layer's own bits, GHOST the bits of the quantizer on its input.
"""

from __future__ import annotations

from collections.abc import Sequence

BOPS_DEFINITIONS = {
    "own": "sum MACs * w_bits * a_bits; a_bits = the layer's own bits (32 if not quantized)",
    "input": "sum MACs * w_bits * a_bits; a_bits = input quantizer bits (32 if none)",
    "previous": "sum MACs * w_bits * a_bits; a_bits = the previous layer's bits (32 for the first)",
}


def layer_rows(
    reference, model, input_shape: Sequence[int], act_rule: str = "own", extra: dict | None = None
) -> list[dict]:
    """Per-layer rows of ``model`` against its float, unpruned ``reference``.

    Args:
        reference: the float model before compression.
        model: the compressed model (pruned and/or quantized).
        input_shape: [C, H, W].
        act_rule: "own", "input" or "previous" (``bops.cost_report``).
        extra: ``{layer: {column: value}}`` added to the matching rows.
    Returns:
        one dict per Conv2d/Linear layer in definition order.
    """
    from edgefl.compress.bops import cost_report

    ref = {r.name: r for r in cost_report(reference, input_shape, full_precision=True).layers}
    rows = []
    for r in cost_report(model, input_shape, act_rule=act_rule).layers:
        o = ref[r.name]
        row = {
            "layer": r.name,
            "kind": r.kind,
            "out": f"{o.out_channels}->{r.out_channels}",
            "in": f"{o.in_channels}->{r.in_channels}",
            "w_bits": r.w_bits,
            "a_bits": r.a_bits,
            "params": r.params,
            "macs": r.macs,
            "bops": r.bops,
            "bops_ref": o.bops,
        }
        row.update((extra or {}).get(r.name, {}))
        rows.append(row)
    return rows


def totals(
    reference, model, input_shape: Sequence[int], acc_before: float, acc_after: float, act_rule: str = "own"
) -> dict:
    """Params, size, MACs, BOPs and their ratios, the definitions used, accuracy before/after and drop.

    Args:
        reference, model, input_shape, act_rule: as ``layer_rows``.
        acc_before, acc_after: test accuracy (0..1) of the float and the compressed model.
    """
    from edgefl.compress.bops import compression_summary, cost_report

    out = compression_summary(
        cost_report(reference, input_shape, full_precision=True),
        cost_report(model, input_shape, act_rule=act_rule),
    )
    out.update(
        {
            "bops_definition": BOPS_DEFINITIONS[act_rule],
            "accuracy_before": acc_before,
            "accuracy_after": acc_after,
            "accuracy_drop_points": round(100 * (acc_before - acc_after), 4),
        }
    )
    return out
