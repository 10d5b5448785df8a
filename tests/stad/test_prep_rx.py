"""Band selection, normalisation and the global RX baseline."""

import numpy as np
import pytest

from edgefl.errors import EdgeflError
from edgefl.stad.prep import band_indices, minmax_normalize, prepare_cube, select_bands
from edgefl.stad.rx import rx_scores


def test_band_indices_uniform_and_first():
    assert band_indices(102, 4, "uniform").tolist() == [0, 34, 67, 101]
    assert band_indices(102, 4, "first").tolist() == [0, 1, 2, 3]
    assert band_indices(10, 10, "uniform").tolist() == list(range(10))


def test_band_selection_errors_name_the_problem():
    with pytest.raises(EdgeflError, match="only 5 bands but the model uses 10"):
        band_indices(5, 10, "uniform", scene="tiny")
    with pytest.raises(EdgeflError, match="choose one of: first, uniform"):
        band_indices(50, 10, "random")
    with pytest.raises(EdgeflError, match="rows × cols × bands"):
        select_bands(np.zeros((4, 4)), 2)


def test_normalisation_is_one_global_minmax():
    cube = np.stack([np.full((2, 2), 10.0), np.full((2, 2), 20.0), np.full((2, 2), 30.0)], axis=2)
    x = prepare_cube(cube, 3, "first")
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    assert x[:, 0, 0].tolist() == [0.0, 0.5, 1.0]  # global, not per band (per band would give zeros)
    with pytest.raises(EdgeflError, match="constant"):
        minmax_normalize(np.ones((3, 3, 2)))


def test_rx_ranks_an_implanted_outlier_first_and_ignores_affine_scaling():
    rng = np.random.default_rng(0)
    cube = rng.normal(size=(20, 20, 6)) @ rng.normal(size=(6, 6))
    cube[7, 9] += 8.0 * rng.normal(size=6)
    r = rx_scores(cube)
    assert np.unravel_index(np.argmax(r), r.shape) == (7, 9)
    np.testing.assert_allclose(rx_scores(3.0 * cube + 5.0), r, rtol=1e-6)
    # RX is the Mahalanobis distance: its mean over pixels is (P-1)/P · B for the sample covariance
    assert r.mean() == pytest.approx(6 * 399 / 400, rel=1e-6)


def test_rx_survives_a_singular_covariance():
    rng = np.random.default_rng(1)
    cube = rng.normal(size=(10, 10, 3))
    cube = np.concatenate([cube, cube[:, :, :1]], axis=2)  # duplicated band → singular Σ
    r = rx_scores(cube)
    assert np.isfinite(r).all() and r.max() > 0


def test_bad_stad_settings_are_refused_not_rewritten():
    from edgefl.stad.config import StadSettings

    assert StadSettings().check() == StadSettings()
    with pytest.raises(EdgeflError, match="channels=9 is invalid — use an even number"):
        StadSettings(channels=9).check()
    with pytest.raises(EdgeflError, match="student_kernel=2"):
        StadSettings(student_kernel=2).check()
