"""PIC-PQ criterion: filter property, physics-inspired importance, global pruning plan, bit rule.

Pure functions over arrays (``filter_rank_property`` runs the model; everything else is numpy):

- ``filter_rank_property``: FP_i^l = mean matrix rank of filter i's (pre-BN) output map over images.
- ``importance``: I_i^l = a_l · FP_i^l + b_l (Hooke's law F = k·x).
- ``global_prune_plan``: units = (space, index), residual chains scored by the index-wise sum of
  their layers' importance; lowest first until FLOPs (conv MACs + FC weights) < target, with a
  per-layer quota min(floor(C·(1 − safeguard)), C − 2).
  Deviation: a chain unit is pruned only when *every* layer of the chain still has quota, so chain
  widths stay consistent (the official loop may prune a chain index in some layers only).
- ``assign_bits``: b_l = B_max,l if s_l == 1 else B_max,l − ceil(λ / s_l), clamped to ≥ min_bits
  (project deviation: the official code has no lower clamp).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from edgefl.compress.prune import Layout


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


def layer_quota(channels: int, safeguard: float) -> int:
    """How many filters a layer may lose: min(floor(C·(1 − safeguard)), C − 2), never negative."""
    return max(0, min(int(math.floor(channels * (1 - safeguard))), channels - 2))


def chain_units(layout: Layout, scores: dict[str, np.ndarray]):
    """(score, space, index, covering conv names) of every unit, sorted ascending by score (stable)."""
    units = []
    for space_i, (space, convs) in enumerate(layout.chains().items()):
        for g in range(layout.spaces[space]):
            cover = [c.name for c in convs if c.out_offset <= g < c.out_offset + len(scores[c.name])]
            if not cover:
                continue
            total = sum(scores[c.name][g - c.out_offset] for c in convs if c.name in cover)
            units.append((float(total), space_i, g, space, cover))
    units.sort(key=lambda u: (u[0], u[1], u[2]))
    return [(s, space, g, cover) for s, _, g, space, cover in units]


def global_prune_plan(
    layout: Layout,
    scores: dict[str, np.ndarray],
    flops_fn,
    flops_target: float,
    safeguard: float = 0.1,
    check_every: int = 10,
) -> tuple[dict, int]:
    """Prune lowest-importance units until FLOPs < ``flops_target`` · FLOPs_orig.

    Args:
        layout: channel layout of the unpruned model.
        scores: conv name -> importance per output filter (unpruned widths).
        flops_fn: alive masks {space: bool array} -> FLOPs (``prune.macs_from_plan`` partially applied).
        flops_target: fraction of the original FLOPs to keep (PIC-PQ's 1 − prune_away/100).
        safeguard: minimum kept fraction per layer (quota rule above).
        check_every: recompute the cost every this many pruned units (10 in the official code).
    Returns:
        (plan {"layout", "pruned"}, FLOPs of the plan).
    """
    alive = {s: np.ones(n, bool) for s, n in layout.spaces.items()}
    target = flops_target * flops_fn(alive)
    quota = {c.name: layer_quota(len(scores[c.name]), safeguard) for c in layout.convs}
    flops, since_check = flops_fn(alive), 0
    for _, space, g, cover in chain_units(layout, scores):
        if flops < target:
            break
        if any(quota[n] <= 0 for n in cover):
            continue
        alive[space][g] = False
        for n in cover:
            quota[n] -= 1
        since_check += 1
        if since_check >= check_every:
            flops, since_check = flops_fn(alive), 0
    flops = flops_fn(alive)
    plan = {
        "layout": layout.name,
        "pruned": {s: np.flatnonzero(~m).tolist() for s, m in alive.items() if (~m).any()},
    }
    return plan, flops


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


def stage_max_bits(layout: Layout, per_stage) -> dict[str, int]:
    """Conv name -> B_max from ``per_stage`` = [stem, stage 1, stage 2, ...] (e.g. [32, 8, 6, 4])."""
    per_stage = list(per_stage)
    stages = max(c.stage for c in layout.convs) + 1
    if len(per_stage) != stages:
        raise ValueError(f"max bits needs {stages} values (stem, then one per stage), got {len(per_stage)}")
    return {c.name: int(per_stage[c.stage]) for c in layout.convs}
