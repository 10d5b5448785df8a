"""Pseudo-anomaly blobs, anomaly-free training cubes and crops."""

import numpy as np
from scipy import ndimage

from edgefl.stad.blobs import anomaly_free, max_targets_for, pseudo_anomaly_mask, sample_crops


def test_blobs_are_small_4_connected_and_counted():
    rng = np.random.default_rng(0)
    for _ in range(30):
        m = pseudo_anomaly_mask(rng, 64)
        labels, n = ndimage.label(m)  # 4-connectivity by default
        assert 1 <= n <= 32
        sizes = np.bincount(labels.ravel())[1:]
        # blobs in different cells may touch and merge; none exceeds 2 × 20 pixels, and cropping can cut
        assert sizes.max() <= 40 and m.sum() >= 1
    assert max_targets_for(64) == 32 and max_targets_for(16) == 2
    assert pseudo_anomaly_mask(np.random.default_rng(1), 16).shape == (16, 16)


def test_anomaly_free_inpaints_ground_truth_with_local_background():
    x = np.ones((3, 12, 12), np.float32)
    x[:, 5, 5] = 9.0  # the anomaly
    gt = np.zeros((12, 12), np.uint8)
    gt[5, 5] = 1
    clean = anomaly_free(x, gt)
    np.testing.assert_allclose(clean, 1.0)
    assert x[0, 5, 5] == 9.0  # input untouched


def test_crops_are_augmented_views_of_the_cubes():
    rng = np.random.default_rng(0)
    cube = np.arange(2 * 20 * 20, dtype=np.float32).reshape(2, 20, 20)
    crops = sample_crops([cube], rng, 5, 8)
    assert crops.shape == (5, 2, 8, 8)
    for c in crops:  # every crop is a rotation/flip of a real window: same value set as some window
        assert set(np.unique(c[0])) <= set(cube[0].ravel())
