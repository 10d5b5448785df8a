import numpy as np
import pytest

from edgefl.errors import EdgeflError
from edgefl.sim.workload import box_blur, head_accuracy, initial_head, make_workload


def test_defocus_blur_spreads_a_point_over_5x5():
    x = np.zeros((1, 1, 9, 9), np.float32)
    x[0, 0, 4, 4] = 25.0
    y = box_blur(x, 5)
    assert np.allclose(y[0, 0, 2:7, 2:7], 1.0) and y.sum() == pytest.approx(25.0)
    flat = np.full((2, 1, 6, 6), 0.3, np.float32)
    assert np.allclose(box_blur(flat, 5), 0.3)  # mirrored edges keep a flat image flat


def test_workload_shares_are_disjoint_and_capped():
    w = make_workload(3, "pixels", alpha=0.5, seed=0, max_per_satellite=50, max_test=100)
    assert w.feature_dim == 784 and len(w.test_y) == 100
    assert all(len(p) <= 50 for p in w.parts)
    flat = np.concatenate(w.parts)
    assert len(flat) == len(set(flat.tolist())) == len(w.train_y)  # every share maps to its own rows
    head = initial_head(w)
    assert head_accuracy(head, w.test_x, w.test_y) == pytest.approx(float((w.test_y == 0).mean()))


def test_unknown_sensor_and_init_are_refused():
    with pytest.raises(EdgeflError, match="sensor effect"):
        make_workload(2, "pixels", sensor="fisheye", max_per_satellite=5, max_test=5)
    w = make_workload(2, "pixels", max_per_satellite=5, max_test=5)
    with pytest.raises(EdgeflError, match="needs bundle features"):
        initial_head(w, "bundle")
