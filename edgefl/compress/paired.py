"""Paired comparison of two classifiers on the same test images: McNemar's exact test.

Two models A and B label the same n images. Only the *discordant* images decide which is better:
``b`` = A right and B wrong, ``c`` = A wrong and B right. Under the null hypothesis (same accuracy) each
discordant image is a fair coin, so b ~ Binomial(b + c, 1/2); the two-sided exact p-value is
``min(1, 2 · P[X <= min(b, c)])``. Several independent runs (seeds) of the same comparison pool by
adding their b and c (each is a fair coin under the null, so the sum is binomial again).

Pure functions over label sequences and counts; used by ``bench/fmnist_summary.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def discordant(pred_a: Sequence[int], pred_b: Sequence[int], labels: Sequence[int]) -> tuple[int, int]:
    """(b, c): images A gets right and B wrong, and the reverse.

    Raises:
        ValueError: the three sequences differ in length.
    """
    if not len(pred_a) == len(pred_b) == len(labels):
        raise ValueError(
            f"lengths differ: {len(pred_a)}, {len(pred_b)}, {len(labels)} — compare on the same images"
        )
    b = sum(1 for a, o, y in zip(pred_a, pred_b, labels) if a == y and o != y)
    c = sum(1 for a, o, y in zip(pred_a, pred_b, labels) if a != y and o == y)
    return b, c


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for discordant counts ``b`` and ``c`` (1.0 when both are 0)."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts are never negative")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def compare(runs: Sequence[tuple[Sequence[int], Sequence[int], Sequence[int]]], alpha: float = 0.05) -> dict:
    """McNemar's test of A vs B, per run and pooled over runs (e.g. seeds).

    Args:
        runs: one (pred_a, pred_b, labels) per run.
        alpha: significance level of the verdict.
    Returns:
        {"per_run": [{"b", "c", "p"}], "b", "c", "p" (pooled), "accuracy_difference_points" (A − B, mean
        over runs), "significant": pooled p < alpha, "better": "A" | "B" | None (only when significant)}.
    """
    per_run, diffs = [], []
    for pred_a, pred_b, labels in runs:
        b, c = discordant(pred_a, pred_b, labels)
        per_run.append({"b": b, "c": c, "p": mcnemar_exact(b, c)})
        diffs.append(100.0 * (b - c) / max(1, len(labels)))
    b, c = sum(r["b"] for r in per_run), sum(r["c"] for r in per_run)
    p = mcnemar_exact(b, c)
    significant = p < alpha
    return {
        "per_run": per_run,
        "b": b,
        "c": c,
        "p": p,
        "accuracy_difference_points": sum(diffs) / max(1, len(diffs)),
        "significant": significant,
        "better": ("A" if b > c else "B") if significant else None,
    }
