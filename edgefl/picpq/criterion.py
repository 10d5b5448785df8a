"""PIC-PQ criterion: filter property, physics-inspired importance, bit rule.

Pure functions over arrays (``filter_rank_property`` runs the model; everything else is numpy):

- ``filter_rank_property``: FP_i^l = mean matrix rank of filter i's (pre-BN) output map over images.
- ``importance``: I_i^l = a_l · FP_i^l + b_l (Hooke's law F = k·x).
- the global pruning plan from these scores is the core's ``edgefl.compress.prune_plan``.
- ``assign_bits``: b_l = B_max,l if s_l == 1 else B_max,l − ceil(λ / s_l), clamped to ≥ min_bits
  (project deviation: the official code has no lower clamp).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from edgefl.compress.prune import Layout
from edgefl.errors import EdgeflError


@torch.no_grad()
def filter_rank_property(model: nn.Module, layout: Layout, batches) -> dict[str, np.ndarray]:
    """Mean rank of every conv filter's output map over the images of ``batches``.

    Args:
        model: float, unpruned model (eval mode is used).
        layout: its channel layout (which convs to hook).
        batches: iterable of normalised input tensors.
    Returns:
        conv name -> float array [C_out] with values in [0, min(H_out, W_out)].
    """
    modules = dict(model.named_modules())
    sums: dict[str, torch.Tensor] = {}
    count = [0]
    hooks = []
    for c in layout.convs:

        def hook(mod, inp, out, name=c.name):
            r = torch.linalg.matrix_rank(out.float()).sum(0)  # [C]
            sums[name] = sums.get(name, 0) + r.to(torch.float64)

        hooks.append(modules[c.name].register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(x)
            count[0] += x.shape[0]
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if count[0] == 0:
        raise ValueError("no calibration images for the rank property")
    return {n: (s / count[0]).numpy() for n, s in sums.items()}


def break_rank_ties(
    ranks: dict[str, np.ndarray], l1: dict[str, np.ndarray], images: int
) -> dict[str, np.ndarray]:
    """Order filters with equal mean rank by their weight L1 norm, without reordering any others.

    A mean rank over ``images`` maps moves in steps of 1/images; adding (0.5/images) · L1/max(L1)
    stays below half a step, so it only separates exact ties. Ties are the rule where the maps are
    small (every 7x7 map of a trained net is full rank: without this the pruned filters of such a
    layer are simply the highest-numbered ones).
    """
    eps = 0.5 / max(1, images)
    out = {}
    for name, r in ranks.items():
        w = np.asarray(l1[name], dtype=np.float64)
        out[name] = np.asarray(r, dtype=np.float64) + eps * w / max(float(w.max()), 1e-30)
    return out


def importance(fp: np.ndarray, a: float, b: float) -> np.ndarray:
    """I = a · FP + b."""
    return a * np.asarray(fp, dtype=np.float64) + b


def bits_from_ratio(s: float, max_bits: int, lam: float = 1 / 6, min_bits: int = 2) -> int:
    """PIC-PQ bit rule: B_max if s == 1 (untouched), else max(min_bits, B_max − ceil(λ / s))."""
    if max_bits >= 32 or s >= 1.0 - 1e-9:
        return int(max_bits)
    if s <= 0:
        return int(min_bits)
    return int(max(min_bits, max_bits - math.ceil(lam / s - 1e-12)))


def assign_bits(
    ratios: dict[str, float], max_bits: dict[str, int], lam: float = 1 / 6, min_bits: int = 2
) -> dict[str, int]:
    """Bit width per layer from its L1-mass ratio s_l and its maximum bits."""
    return {n: bits_from_ratio(ratios[n], max_bits[n], lam, min_bits) for n in ratios}


def default_max_bits(stages: int) -> list[int]:
    """B_max per stage when none are given: 32 (float) for the stem, then 4 bits for every other stage.

    Not the spec's ResNet-56/CIFAR 8, 6, 4 (``--max-bits 32,8,6,4``): with PIC-PQ's short default
    schedule that setting gave 37x BOPs at 0.65 points lost on MNIST ResNet-20, while 4-bit QAT is
    lossless there and 4/4/4 with 90 % of FLOPs kept gives > 50x (issue 14's bar, bench/targets_mnist.py).
    """
    return [32] + [4] * (stages - 1)


def stage_max_bits(layout: Layout, per_stage=None) -> dict[str, int]:
    """Conv name -> B_max from ``per_stage`` = [stem, stage 1, stage 2, ...] (e.g. [32, 8, 6, 4]).

    Stages are the layout's (``edgefl.compress.graph.layer_stages``); ``per_stage`` None takes
    ``default_max_bits``.

    Raises:
        EdgeflError: ``per_stage`` does not have one value per stage.
    """
    stages = max(c.stage for c in layout.convs) + 1
    per_stage = default_max_bits(stages) if per_stage is None else list(per_stage)
    if len(per_stage) != stages:
        raise EdgeflError(
            f"--max-bits {','.join(map(str, per_stage))} has {len(per_stage)} values; this model has "
            f"{stages} stages (stem, then {stages - 1} by output resolution) — give {stages} values, "
            f"e.g. {','.join(map(str, default_max_bits(stages)))}, or leave --max-bits out"
        )
    return {c.name: int(per_stage[c.stage]) for c in layout.convs}
