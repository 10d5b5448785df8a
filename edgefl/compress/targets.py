"""Compression targets: what a user asks for ("50x fewer BOPs", "fits in 150 kB", "lose at most 0.5
points") and the arithmetic every method shares to meet it, check it and report it.

A target is three settings fields (``TargetSettings``, mixed into a method's settings dataclass):

- ``target_bops``: BOPs ratio to the float model (reference BOPs / compressed BOPs), e.g. 50;
- ``target_size``: model size in bytes (``150000``, ``"150kB"``, ``"146KiB"``) or as a ratio to the float
  model (``"12x"``); size as ``edgefl.compress.bops`` defines it (weights at their bits, biases and BN
  affine at 32 bits — theoretical, not the ONNX file);
- ``max_drop``: accuracy points (0..100) the compressed model may lose on the checkpoint's held-out split.

The cost targets (BOPs, size) are *resolved* by a method's ``plan`` into its own knobs (PIC-PQ: B_max per
stage and the FLOPs kept; GHOST: the k-means threshold). The cost of a plan is known before training, so
a cost target is either met exactly or refused, before any training, when even the most aggressive
setting the method allows cannot reach it (``refuse``). ``max_drop`` can only be checked after training:
``edgefl.compress.method.run`` backs off (``MAX_ATTEMPTS`` attempts in all) and reports honestly.

Everything here is pure arithmetic over numbers and per-layer rows, except ``layer_costs`` which reads
a model once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from edgefl.errors import EdgeflError

MAX_ATTEMPTS = 3  # with max_drop: the first attempt plus at most two back-offs
SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*|x|×)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class TargetSettings:
    """The target fields every steerable method's settings carry (mixed in; all optional).

    Attributes:
        target_bops: reach at least this BOPs ratio to the float model (e.g. 50).
        target_size: reach at most this size: bytes (int, "150000", "150kB", "146KiB") or a ratio to
            the float model ("12x").
        max_drop: lose at most this many accuracy points on the held-out split (e.g. 0.5).
    """

    target_bops: float | None = None
    target_size: float | str | None = None
    max_drop: float | None = None


@dataclass(frozen=True)
class Target:
    """A parsed, checked target. ``size_bytes`` and ``size_ratio`` are exclusive."""

    bops_ratio: float | None = None
    size_bytes: float | None = None
    size_ratio: float | None = None
    max_drop: float | None = None

    @property
    def has_cost(self) -> bool:
        """Whether a BOPs or size target is set (the ones a plan resolves)."""
        return self.bops_ratio is not None or self.size_bytes is not None or self.size_ratio is not None

    def budget(self, bops_ref: float, size_ref: float) -> Budget:
        """The largest BOPs and size (bytes) allowed, given the float model's."""
        size = self.size_bytes if self.size_bytes is not None else None
        if self.size_ratio is not None:
            size = size_ref / self.size_ratio
        return Budget(bops_ref / self.bops_ratio if self.bops_ratio else math.inf, size or math.inf)

    def requested(self) -> dict:
        """The target as JSON (only the parts given)."""
        out = {
            "bops_ratio": self.bops_ratio,
            "size_bytes": self.size_bytes,
            "size_ratio": self.size_ratio,
            "max_drop_points": self.max_drop,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class Budget:
    """Absolute limits: BOPs and size in bytes (``inf`` = no limit)."""

    bops: float
    size_bytes: float

    def fits(self, bops: float, size_bytes: float) -> bool:
        # a hair of slack so a plan resolved to exactly the budget is not lost to float rounding
        return bops <= self.bops * (1 + 1e-9) and size_bytes <= self.size_bytes * (1 + 1e-9)


def parse_size(value) -> tuple[float | None, float | None]:
    """``--target-size`` → (bytes, None) or (None, ratio).

    Accepts a number of bytes (``150000``, ``"150000"``), bytes with a unit (``"150kB"``, ``"146KiB"``,
    ``"1.2MB"``; kB = 1000, KiB = 1024) or a ratio to the float model (``"12x"``, ``"12×"``).

    Raises:
        EdgeflError: anything else, or a non-positive value.
    """
    if isinstance(value, bool):
        raise EdgeflError(f"--target-size {value!r} — give bytes (150000, 150kB) or a ratio (12x)")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    else:
        m = _SIZE.match(str(value))
        if not m or m.group(2).lower() not in (*SIZE_UNITS, "x", "×"):
            raise EdgeflError(
                f"--target-size {value!r} is not a size — give bytes (150000, 150kB, 146KiB) or a ratio "
                "to the float model (12x)"
            )
        number, unit = float(m.group(1)), m.group(2).lower()
    if not math.isfinite(number) or number <= 0:
        raise EdgeflError(f"--target-size {value!r} must be positive, e.g. 150kB or 12x")
    if unit in ("x", "×"):
        if number < 1:
            raise EdgeflError(f"--target-size {value!r} is a ratio below 1 — the float model already fits")
        return None, number
    return number * SIZE_UNITS[unit], None


def target_from(settings) -> Target | None:
    """The checked target of a settings object (None when it sets none).

    Raises:
        EdgeflError: a target value out of range, named with its option.
    """
    bops = getattr(settings, "target_bops", None)
    size = getattr(settings, "target_size", None)
    drop = getattr(settings, "max_drop", None)
    if bops is None and size is None and drop is None:
        return None
    if bops is not None and not (math.isfinite(bops) and bops >= 1):
        raise EdgeflError(f"--target-bops {bops} must be a ratio to the float model of at least 1, e.g. 50")
    if drop is not None and not (math.isfinite(drop) and 0 <= drop <= 100):
        raise EdgeflError(f"--max-drop {drop} must be accuracy points in [0, 100], e.g. 0.5")
    size_bytes, size_ratio = parse_size(size) if size is not None else (None, None)
    return Target(bops, size_bytes, size_ratio, drop)


@dataclass(frozen=True)
class LayerCost:
    """What the cost of one conv/linear layer depends on: MACs, weight and other parameter counts."""

    name: str
    kind: str  # "conv" | "linear"
    macs: int
    weights: int
    other_params: int  # bias (at 32 bits)


def layer_costs(model, input_shape: Sequence[int]) -> tuple[list[LayerCost], int]:
    """Per-layer MACs and parameter counts of ``model`` (float or pruned), and the BN affine bits.

    Returns:
        (rows in definition order, bits of everything else the size counts: BN affine at 32 bits).
    """
    from edgefl.compress.bops import cost_report

    report = cost_report(model, input_shape, full_precision=True)
    modules = dict(model.named_modules())
    rows = []
    for r in report.layers:
        w = modules[r.name].weight.numel()
        rows.append(LayerCost(r.name, r.kind, r.macs, w, r.params - w))
    return rows, report.other_bits


def cost_at_bits(
    layers: Sequence[LayerCost], other_bits: int, w_bits: Mapping[str, int], a_bits: Mapping[str, int]
) -> tuple[float, float]:
    """(BOPs, size in bytes) if each layer ran at ``w_bits``/``a_bits`` (missing = 32), as ``bops.py``
    counts them: BOPs = Σ MACs·w·a; size = Σ weights·w + biases·32 + ``other_bits``, in bytes."""
    bops = sum(lc.macs * w_bits.get(lc.name, 32) * a_bits.get(lc.name, 32) for lc in layers)
    bits = sum(lc.weights * w_bits.get(lc.name, 32) + lc.other_params * 32 for lc in layers) + other_bits
    return float(bops), bits / 8


def largest_passing(lo: float, hi: float, passes: Callable[[float], bool], steps: int = 12) -> float | None:
    """The largest x in [lo, hi] (to ``steps`` halvings) with ``passes(x)``, assuming passing is
    monotone (true below some x, false above); None when even ``lo`` fails."""
    if passes(hi):
        return hi
    if not passes(lo):
        return None
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if passes(mid) else (lo, mid)
    return lo


def refuse(
    target: Target,
    budget: Budget,
    best_bops: float,
    best_size: float,
    ref_bops: float,
    ref_size: float,
    how: str,
) -> None:
    """Raise the one-line refusal when the cheapest setting allowed (``best_*``) misses the budget.

    Args:
        target, budget: the request and its absolute limits.
        best_bops, best_size: cost of the most aggressive setting the method allows.
        ref_bops, ref_size: the float model's.
        how: what that setting is, e.g. "every quantized layer at 2 bits" (for the message).
    Raises:
        EdgeflError: when the budget cannot be met.
    """
    if best_bops > budget.bops * (1 + 1e-9):
        raise EdgeflError(
            f"--target-bops {target.bops_ratio:g} is out of reach: even {how} gives "
            f"{ref_bops / best_bops:.1f}x — lower the target (at most {ref_bops / best_bops:.1f}x)"
        )
    if best_size > budget.size_bytes * (1 + 1e-9):
        asked = (
            f"{target.size_ratio:g}x" if target.size_ratio is not None else f"{target.size_bytes:.0f} bytes"
        )
        raise EdgeflError(
            f"--target-size {asked} is out of reach: even {how} is {best_size:.0f} bytes "
            f"({ref_size / best_size:.1f}x) — ask for at least {best_size:.0f} bytes"
        )


def bits_needed(budget_bits: float, fixed_bits: float, weights: int) -> float:
    """Mean bits per weight a size budget leaves once the fixed part (biases, BN, FP layers) is paid."""
    return (budget_bits - fixed_bits) / max(1, weights)


def report(
    target: Target | None, totals: Mapping, knobs: Mapping | None = None, attempts: Sequence[Mapping] = ()
) -> dict:
    """The ``target`` block of a result: what was asked, what was reached, whether each part was met.

    Args:
        target: the request (None: no target; the block still shows the knobs used).
        totals: the result's totals (``bops_ratio``, ``size_bytes``, ``size_ratio``, drop points).
        knobs: the method's knobs as resolved (e.g. {"max_bits": [...], "flops_target": 0.9}).
        attempts: with ``max_drop``, one summary per attempt (``attempt_summary``).
    Returns:
        {"requested", "reached", "met", "checks", "knobs", "attempts"}.
    """
    reached = {
        "bops_ratio": totals["bops_ratio"],
        "size_bytes": totals["size_bytes"],
        "size_ratio": totals["size_ratio"],
        "drop_points": totals["accuracy_drop_points"],
    }
    checks = {}
    if target is not None:
        if target.bops_ratio is not None:
            checks["bops_ratio"] = totals["bops_ratio"] >= target.bops_ratio * (1 - 1e-9)
        if target.size_bytes is not None:
            checks["size_bytes"] = totals["size_bytes"] <= target.size_bytes * (1 + 1e-9)
        if target.size_ratio is not None:
            checks["size_ratio"] = totals["size_ratio"] >= target.size_ratio * (1 - 1e-9)
        if target.max_drop is not None:
            checks["max_drop_points"] = drop_met(target, totals)
    return {
        "requested": target.requested() if target is not None else {},
        "reached": reached,
        "met": all(checks.values()),
        "checks": checks,
        "knobs": dict(knobs or {}),
        "attempts": list(attempts),
    }


def drop_met(target: Target | None, totals: Mapping) -> bool:
    """Whether the accuracy drop is within ``max_drop`` (True without one)."""
    if target is None or target.max_drop is None:
        return True
    return totals["accuracy_drop_points"] <= target.max_drop + 1e-9


def attempt_summary(knobs: Mapping, totals: Mapping) -> dict:
    """One line of ``attempts``: the knobs tried and what they gave."""
    return {
        "knobs": dict(knobs),
        "bops_ratio": totals["bops_ratio"],
        "size_ratio": totals["size_ratio"],
        "accuracy_after": totals["accuracy_after"],
        "drop_points": totals["accuracy_drop_points"],
    }
