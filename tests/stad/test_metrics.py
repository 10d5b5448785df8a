"""HAD metrics against hand-computed toy maps and a brute-force pairwise AUC."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefl.errors import EdgeflError
from edgefl.stad.metrics import had_metrics, mean_metrics, roc_auc, threshold_curves


def test_toy_map_by_hand():
    # background {0, 0.5, 0}, anomaly {1}: P_F = 1 at τ=0, 1/3 on (0, 0.5], 0 above; P_D = 1 on [0, 1]
    score = np.array([[0.0, 0.5], [1.0, 0.0]])
    gt = np.array([[0, 0], [1, 0]])
    m = had_metrics(score, gt)
    assert m["auc_df"] == pytest.approx(1.0)
    assert m["auc_ftau"] == pytest.approx(0.5 / 3, abs=1e-4)
    assert m["auc_dtau"] == pytest.approx(1.0, abs=1e-4)
    assert m["snpr_db"] == pytest.approx(10 * np.log10(1.0 / m["auc_ftau"]), rel=1e-9)
    assert m["auc_bs"] == pytest.approx(m["auc_df"] - m["auc_ftau"])
    assert m["auc_odp"] == pytest.approx(m["auc_df"] + m["auc_dtau"] - m["auc_ftau"])


def test_inverted_detector_and_ties():
    gt = np.array([1, 1, 0, 0, 0])
    assert roc_auc(np.array([0.0, 0.1, 0.5, 0.7, 0.9]), gt) == pytest.approx(0.0)
    assert roc_auc(np.ones(5), gt) == pytest.approx(0.5)  # all ties count ½
    # one anomaly tied with one of three background pixels, above the others: (2 + 0.5) / 3
    assert roc_auc(np.array([0.5, 0.5, 0.1, 0.2]), np.array([1, 0, 0, 0])) == pytest.approx(2.5 / 3)


def test_curves_are_monotone_and_span_the_corner():
    rng = np.random.default_rng(0)
    c = threshold_curves(rng.random((20, 20)), rng.random((20, 20)) < 0.1)
    assert c.pd[0] == 1.0 and c.pf[0] == 1.0
    assert np.all(np.diff(c.pd) <= 0) and np.all(np.diff(c.pf) <= 0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.booleans()), min_size=4, max_size=60))
def test_exact_auc_equals_pairwise_count_and_grid_auc(pairs):
    s = np.array([p[0] for p in pairs], float)
    g = np.array([p[1] for p in pairs], int)
    if g.all() or not g.any():
        return
    a, b = s[g == 1][:, None], s[g == 0][None, :]
    brute = ((a > b).sum() + 0.5 * (a == b).sum()) / (a.size * b.size)
    assert roc_auc(s, g) == pytest.approx(brute)
    # the 30k-threshold trapezoid gives the same area on these integer-valued maps, except that it stops at
    # τ = max s: when background pixels share the top score the last segment to (0, 0) is left out
    grid = had_metrics(s, g)["auc_df_grid"]
    if (s[g == 0] < s.max()).all():
        assert grid == pytest.approx(brute, abs=1e-9)
    else:
        assert grid <= brute + 1e-9


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(EdgeflError, match="both anomaly"):
        had_metrics(np.ones(4), np.zeros(4))
    with pytest.raises(EdgeflError, match="shapes must match"):
        roc_auc(np.ones(4), np.array([0, 1, 0]))
    with pytest.raises(EdgeflError, match="NaN"):
        roc_auc(np.array([0.0, np.nan]), np.array([0, 1]))


def test_mean_is_per_scene_mean():
    assert mean_metrics([{"a": 1.0}, {"a": 0.5}]) == {"a": 0.75}
