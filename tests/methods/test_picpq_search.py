"""Aging evolution for (a, b): identity candidate, best-ever bookkeeping, seeding, improvement."""

import numpy as np

from edgefl.picpq.search import evolve


def _quadratic(target_a, target_b):
    return lambda a, b: float(np.sum((np.log(a) - np.log(target_a)) ** 2) + np.sum((b - target_b) ** 2))


def test_identity_is_evaluated_and_best_is_never_worse():
    fit = _quadratic(np.full(10, 2.0), np.full(10, 0.5))
    res = evolve(fit, np.ones(10), population=6, sample=3, generations=20, seed=0)
    assert len(res.history) == 26
    assert (
        res.identity_loss == fit(np.ones(10), np.zeros(10)) == res.history[5]
    )  # identity = last initial member
    assert res.best.loss == min(res.history) <= res.identity_loss


def test_seeded_and_improves_over_generations():
    fit = _quadratic(np.full(5, 3.0), np.zeros(5))
    a = evolve(fit, np.full(5, 0.1), population=8, sample=4, generations=60, seed=3)
    b = evolve(fit, np.full(5, 0.1), population=8, sample=4, generations=60, seed=3)
    assert a.history == b.history
    assert a.best.loss < min(a.history[:8])  # evolution found something better than the initial population


def test_identity_wins_when_it_is_optimal():
    fit = _quadratic(np.ones(4), np.zeros(4))
    res = evolve(fit, np.ones(4), population=4, sample=2, generations=5, seed=0)
    assert res.best.loss == 0.0 and np.allclose(res.best.a, 1) and np.allclose(res.best.b, 0)
