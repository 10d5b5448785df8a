"""McNemar's exact test (edgefl.compress.paired) against hand-computed binomial tails and scipy."""

import pytest

from edgefl.compress.paired import compare, discordant, mcnemar_exact


def test_discordant_counts_by_hand():
    labels = [0, 1, 2, 3, 4]
    a = [0, 1, 9, 9, 4]  # right on 0, 1, 4
    b = [0, 9, 2, 9, 9]  # right on 0, 2
    assert discordant(a, b, labels) == (2, 1)  # A-only: images 1 and 4; B-only: image 2
    with pytest.raises(ValueError, match="same images"):
        discordant(a, b[:4], labels)


def test_exact_p_values_by_hand():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0  # symmetric: capped at 1
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)  # 2 * 0.5^5
    assert mcnemar_exact(1, 9) == pytest.approx(2 * (1 + 10) / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


@pytest.mark.parametrize("b,c", [(40, 60), (120, 80), (500, 560), (7, 0)])
def test_exact_p_value_matches_scipy(b, c):
    stats = pytest.importorskip("scipy.stats")
    assert mcnemar_exact(b, c) == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_compare_pools_the_discordant_pairs_of_several_runs():
    labels = [0] * 100
    a = [0] * 100
    b_run = [1] * 10 + [0] * 90  # B wrong on 10 images that A gets right
    out = compare([(a, b_run, labels), (a, b_run, labels)])
    assert (out["b"], out["c"]) == (20, 0) and [r["b"] for r in out["per_run"]] == [10, 10]
    assert out["p"] == pytest.approx(2 * 0.5**20) and out["significant"] and out["better"] == "A"
    assert out["accuracy_difference_points"] == pytest.approx(10.0)
    even = compare([(a, a, labels)])
    assert even["p"] == 1.0 and not even["significant"] and even["better"] is None
