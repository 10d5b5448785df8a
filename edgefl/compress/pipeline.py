"""Shared steps of the pruning/quantization methods: tensors, QAT set-up, evaluation, summaries, saving."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from edgefl.data.arrays import ArrayData, normalize


@dataclass
class CompressionResult:
    """What a method returns: the compressed model, its checkpoint state, per-layer rows and totals."""

    model: object
    state: dict
    layers: list[dict]
    totals: dict
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"totals": self.totals, "layers": self.layers, **self.extra}


def tensors(data: ArrayData, preprocessing: dict):
    """(x, y) torch tensors, x normalised as the model expects."""
    import torch

    return torch.from_numpy(normalize(data.x, preprocessing)), torch.from_numpy(data.y)


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit, val) index split; val holds ``fraction`` of ``n`` (at least 1)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(fraction * n)))
    return order[n_val:], order[:n_val]


def quant_specs(bits: dict[str, int], weight_kind: str = "symmetric") -> dict[str, dict]:
    """Layer specs for ``quantize_model``: weights and input activations at the layer's own bits (< 32)."""
    return {
        n: {"w": {"kind": weight_kind, "bits": int(b)}, "a": {"kind": "range", "bits": int(b)}}
        for n, b in bits.items()
        if b < 32
    }


def quantize_for_qat(
    model, bits: dict[str, int], calib_x, weight_kind: str = "symmetric", act_clip: str = "calibrate"
):
    """Swap in quantized layers (in place) and set activation clip ranges.

    Args:
        act_clip: "calibrate" (99.99th percentile of |x| on ``calib_x``) or "dorefa" (fixed [0, 1]).
    """
    from edgefl.compress.qmodules import calibrate_activations, quantize_model

    if act_clip not in ("calibrate", "dorefa"):
        raise ValueError(f"act_clip must be 'calibrate' or 'dorefa', got {act_clip!r}")
    quantize_model(model, quant_specs(bits, weight_kind))
    if act_clip == "calibrate":
        calibrate_activations(model, [calib_x[i : i + 128] for i in range(0, len(calib_x), 128)])
    return model


def accuracy(model, data: ArrayData, preprocessing: dict) -> float:
    from edgefl.train import evaluate

    return float(evaluate(model, data, preprocessing)["accuracy"])


def layer_rows(reference, model, input_shape, extra: dict[str, dict] | None = None) -> list[dict]:
    """Per-layer table rows (reference = unpruned FP model) with widths, bits, MACs and BOPs."""
    from edgefl.compress.bops import cost_report

    ref = {r.name: r for r in cost_report(reference, input_shape, full_precision=True).layers}
    rows = []
    for r in cost_report(model, input_shape).layers:
        o = ref[r.name]
        row = {
            "layer": r.name,
            "out": f"{o.out_channels}->{r.out_channels}",
            "in": f"{o.in_channels}->{r.in_channels}",
            "w_bits": r.w_bits,
            "a_bits": r.a_bits,
            "macs": r.macs,
            "bops": r.bops,
            "bops_ref": o.bops,
        }
        row.update((extra or {}).get(r.name, {}))
        rows.append(row)
    return rows


def totals(reference, model, input_shape, acc_before: float, acc_after: float) -> dict:
    """Totals: params, size, BOPs and their ratios, accuracy before/after and the drop (points)."""
    from edgefl.compress.bops import compression_summary, cost_report

    out = compression_summary(
        cost_report(reference, input_shape, full_precision=True), cost_report(model, input_shape)
    )
    out.update(
        {
            "accuracy_before": acc_before,
            "accuracy_after": acc_after,
            "accuracy_drop_points": round(100 * (acc_before - acc_after), 4),
        }
    )
    return out


def load_float_checkpoint(checkpoint, data: str | None = None):
    """A float checkpoint and the seeded train/test split it was trained on.

    Args:
        checkpoint: float checkpoint directory.
        data: dataset name/path (default: the checkpoint's ``data``).
    Returns:
        (checkpoint, train, test).
    Raises:
        EdgeflError: the checkpoint is already compressed, or names no data and none was given.
    """
    from edgefl.checkpoint import load_checkpoint
    from edgefl.data import load_split, split_arguments
    from edgefl.errors import EdgeflError

    ckpt = load_checkpoint(checkpoint)
    if ckpt.config.get("compression"):
        method = ckpt.config["compression"].get("method")
        raise EdgeflError(f"{checkpoint} is already compressed ({method}) — start from the float checkpoint")
    data = data or ckpt.config.get("data")
    if not data:
        raise EdgeflError("the checkpoint does not name its data — pass --data (e.g. mnist)")
    split = load_split(data, *split_arguments(ckpt.config))
    return ckpt, split.train, split.test


def save_compressed(out, result: CompressionResult, base_config: dict) -> str:
    """Write the compressed model as a checkpoint directory (config["compression"] = result.state)."""
    from edgefl.checkpoint import save_checkpoint

    keep = ("model", "model_args", "input_shape", "num_classes", "labels", "preprocessing", "data", "split")
    config = {k: copy.deepcopy(base_config[k]) for k in keep if k in base_config}
    config["compression"] = result.state
    config["metrics"] = {"test_accuracy": result.totals["accuracy_after"], "compression": result.totals}
    return str(save_checkpoint(out, result.model, config))
