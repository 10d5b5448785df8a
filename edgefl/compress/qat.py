"""QAT set-up the methods share: normalised tensors, a seeded validation split, quantizer specs, accuracy."""

from __future__ import annotations

import numpy as np

from edgefl.data.arrays import ArrayData, normalize


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
