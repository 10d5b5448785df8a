"""Global filter pruning to a FLOPs target: residual chains scored together, a quota per layer.

Used by PIC-PQ (physics-inspired scores) and the L1-magnitude baseline (filter L1 norms); the scores
are the method's, the ranking and the quotas are shared.

- ``global_prune_plan``: units = (space, index), residual chains scored by the index-wise sum of
  their layers' importance; lowest first until FLOPs (conv MACs + FC weights) < target, with a
  per-layer quota min(floor(C·(1 − safeguard)), C − 2).
  Deviation from the official PIC-PQ code: a chain unit is pruned only when *every* layer of the chain
  still has quota, so chain widths stay consistent (the official loop may prune a chain index in some
  layers only).
"""

from __future__ import annotations

import math

import numpy as np

from edgefl.compress.prune import Layout


def layer_quota(channels: int, safeguard: float) -> int:
    """How many filters a layer may lose: min(floor(C·(1 − safeguard)), C − 2), never negative."""
    return max(0, min(int(math.floor(channels * (1 - safeguard))), channels - 2))


def chain_units(layout: Layout, scores: dict[str, np.ndarray]):
    """(score, space, index, covering conv names) of every unit, sorted ascending by score (stable).

    A unit's score is the sum of its channel's importance over the convs whose outputs hold it.
    """
    held: dict[str, dict[int, list]] = {s: {} for s in layout.spaces}  # space -> index -> [(conv, local)]
    for c in layout.convs:
        for local, (space, g) in enumerate(c.out[: len(scores[c.name])]):
            if space is not None:
                held[space].setdefault(g, []).append((c.name, local))
    units = []
    for space_i, space in enumerate(layout.spaces):
        for g in range(layout.spaces[space]):
            cover = held[space].get(g)
            if not cover:
                continue
            total = sum(scores[name][local] for name, local in cover)
            units.append((float(total), space_i, g, space, [name for name, _ in cover]))
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
        flops_fn: alive masks {space: bool array} -> FLOPs (from ``prune.flops_counter``).
        flops_target: fraction of the original FLOPs to keep (PIC-PQ's 1 − prune_away/100).
        safeguard: minimum kept fraction per layer (quota rule above).
        check_every: recompute the cost every this many pruned units (10 in the official code).
    Returns:
        (plan (``Layout.plan``), FLOPs of the plan).
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
    plan = layout.plan({s: np.flatnonzero(~m).tolist() for s, m in alive.items() if (~m).any()})
    return plan, flops
