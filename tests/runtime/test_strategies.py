"""Aggregation strategies with hand-computed values."""
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime import strategies as S
from edgefl.runtime.errors import EdgeRuntimeError


def upd(cid, n, *values, **kw):
    return S.ClientUpdate(cid, n, OrderedDict([("w", np.array(values, np.float32))]),
                          kw.get("staleness", 0))


def test_fedavg_weights_by_examples():
    out = S.fedavg([upd("a", 1, 0.0, 4.0), upd("b", 3, 4.0, 0.0)])
    np.testing.assert_allclose(out["w"], [3.0, 1.0])


def test_fedbuff_staleness_weights_are_named_and_differ():
    assert S.inv_sqrt_1p(4) == pytest.approx(0.4472, abs=1e-4)
    assert S.inv_1p_sqrt(4) == pytest.approx(1 / 3)
    assert S.inv_sqrt_1p(9) == pytest.approx(0.3162, abs=1e-4)
    assert S.inv_1p_sqrt(9) == pytest.approx(0.25)
    assert S.DEFAULT_STALENESS == "inv_sqrt_1p"
    ups = [upd("a", 10, 2.0), upd("b", 1, 2.0, staleness=3)]
    np.testing.assert_allclose(S.fedbuff(ups)["w"], [(2.0 + 2.0 * 0.5) / 2])
    np.testing.assert_allclose(S.fedbuff(ups, "inv_1p_sqrt")["w"],
                               [(2.0 + 2.0 / (1 + np.sqrt(3))) / 2], rtol=1e-6)
    with pytest.raises(EdgeRuntimeError):
        S.fedbuff(ups, "linear")


def test_median_and_trimmed_mean():
    ups = [upd("a", 1, 1.0), upd("b", 1, 2.0), upd("c", 1, 100.0), upd("d", 1, 3.0),
           upd("e", 1, -50.0)]
    assert S.median(ups)["w"][0] == 2.0
    assert S.trimmed_mean(ups, beta=0.2)["w"][0] == pytest.approx(2.0)
    assert S.trimmed_mean(ups, beta=0.0)["w"][0] == pytest.approx(56.0 / 5)


def test_clipping_and_norm():
    t = OrderedDict([("a", np.array([3.0], np.float32)), ("b", np.array([4.0], np.float32))])
    assert S.update_norm(t) == pytest.approx(5.0)
    c = S.clip_by_norm(t, 1.0)
    assert S.update_norm(c) == pytest.approx(1.0, rel=1e-6)
    assert S.clip_by_norm(t, 10.0) is t
    out = S.aggregate("fedavg", [upd("a", 1, 30.0), upd("b", 1, 0.0)], clip_norm=1.0)
    np.testing.assert_allclose(out["w"], [0.5])


def test_prox_term_and_gradient():
    w = OrderedDict([("w", np.array([1.0, 3.0], np.float32))])
    g = OrderedDict([("w", np.array([0.0, 1.0], np.float32))])
    assert S.prox_penalty(w, g, 0.1) == pytest.approx(0.5 * 0.1 * 5)
    np.testing.assert_allclose(S.prox_gradient(w, g, 0.1)["w"], [0.1, 0.2])


def test_unknown_strategy_lists_choices():
    with pytest.raises(EdgeRuntimeError, match="fedavg"):
        S.aggregate("krumm", [upd("a", 1, 0.0)])
