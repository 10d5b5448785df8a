"""The streaming fold: exact fixed-point sums, the same for any order and any grouping."""
from collections import OrderedDict

import numpy as np

from edgefl.runtime.fold import Fold, grid_for

SHAPES = OrderedDict([("b", (3,)), ("w", (4, 5))])


def _fold(weight_bound=10 ** 4, model=None):
    model = model or OrderedDict((n, np.ones(s, np.float32)) for n, s in SHAPES.items())
    return Fold(SHAPES, grid_for(model, weight_bound))


def _update(seed, scale=1e-2):
    rng = np.random.RandomState(seed)
    return OrderedDict((n, (rng.standard_t(2, s) * scale).astype(np.float32))
                       for n, s in SHAPES.items())


def _sums(fold):
    return OrderedDict((n, a.copy()) for n, a in fold.exact_sums().items())


def _same(a, b):
    return all(a[n].tobytes() == b[n].tobytes() for n in a)


def test_the_mean_is_the_weighted_mean_within_the_stated_bound():
    # Prepare: five updates with example counts as weights.
    ups = [(_update(i), 7 + 13 * i) for i in range(5)]
    fold = _fold()
    # Execute
    for t, n in ups:
        assert fold.add(t, n, n) is None
    # Assert: float64 reference; the fold's error bound covers the difference (plus the
    # float32 rounding of the mean).
    total = sum(n for _, n in ups)
    for name in SHAPES:
        ref = sum(t[name].astype(np.float64) * n for t, n in ups) / total
        got = fold.mean(name)
        assert np.all(np.abs(got - ref) <= fold.error_bound() + np.abs(ref) * 2 ** -24)
    assert fold.count == 5 and fold.weight == total and 0 < fold.error_bound() < 1e-9


def test_a_non_finite_or_out_of_range_update_is_refused_and_changes_nothing():
    fold = _fold()
    fold.add(_update(0), 3, 3)
    before = _sums(fold)
    bad_nan, bad_big = _update(1), _update(2)
    bad_nan["w"][3, 4] = np.nan  # in the last tensor: the first one was folded and comes out again
    bad_big["w"][0, 0] = 2.0 ** 10  # the tensor's range: 2**8 above its largest weight (1)
    assert fold.add(bad_nan, 5, 5).startswith("non-finite:")
    assert fold.add(bad_big, 5, 5).startswith("range:")
    assert _same(_sums(fold), before) and fold.count == 1 and fold.weight == 3


def test_subtract_takes_out_exactly_what_add_put_in():
    fold = _fold()
    fold.add(_update(0), 3, 3)
    before = _sums(fold)
    fold.add(_update(1), 1000, 1000)
    fold.subtract(_update(1), 1000, 1000)
    assert _same(_sums(fold), before) and (fold.count, fold.weight) == (1, 3)


def test_large_terms_take_the_slow_path_and_give_the_same_integers():
    # Prepare: a weight so large that x * coef * 2**bits passes 2**50 for some entries.
    fold = _fold(weight_bound=2 ** 40)
    up = _update(3, scale=1.0)
    coef = 2 ** 39
    # Execute
    fold.add(up, coef, coef)
    # Assert: the sums are exactly rint(x * coef * 2**bits), entry by entry.
    for name, (bits, _) in fold.grid.items():
        scaled = up[name].astype(np.float64).reshape(-1) * (float(coef) * 2.0 ** bits)
        assert np.abs(scaled).max() > 2.0 ** 50
        assert np.array_equal(fold.exact_sums()[name].reshape(-1), np.rint(scaled).astype(np.int64))


def test_the_state_round_trips_exactly():
    fold = _fold()
    for i in range(3):
        fold.add(_update(i), i + 1, i + 1)
    tensors, info = fold.to_state()
    back = Fold.from_state(OrderedDict((n, a.copy()) for n, a in tensors.items()), info)
    back.add(_update(9), 2, 2)
    fold.add(_update(9), 2, 2)
    assert _same(_sums(back), _sums(fold)) and back.weight == fold.weight
