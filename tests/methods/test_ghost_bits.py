"""HQ bit-width search (GHOST, Zhang et al., IEEE TGRS 2023, arXiv 2301.00131: the k-means rule)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefl.ghost.bits import (
    bits_from_distortion,
    kmeans_1d,
    layer_distortion,
    mean_bits,
    search_bits,
    tau_for_mean_bits,
)
from edgefl.errors import EdgeflError


def test_exactly_eight_distinct_values_get_three_bits():
    rng = np.random.default_rng(1)
    levels = np.linspace(-0.1, 0.1, 2**3)
    w = rng.choice(levels, size=(16, 16, 3, 3))
    assert np.unique(w).size == 8
    bits, _, layers = search_bits({"conv": w}, tau=0.1)
    assert bits == {"conv": 3}
    assert layers[0].distortion[3] == 0.0
    assert layers[0].distortion[2] > 0.1


def test_four_values_with_tiny_noise_get_two_bits():
    rng = np.random.default_rng(2)
    w = rng.choice(np.array([-0.2, -0.05, 0.07, 0.3]), size=(32, 16, 3, 3)) + rng.normal(
        0, 1e-5, (32, 16, 3, 3)
    )
    assert search_bits({"conv": w}, tau=0.1)[0] == {"conv": 2}


def test_gaussian_bits_follow_the_reference_values_and_grow_with_sigma():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1, 36864)
    got = {s: search_bits({"c": z * s}, tau=0.1, seed=3)[0]["c"] for s in (0.001, 0.003, 0.01, 0.02, 0.05)}
    assert list(got.values()) == sorted(got.values())
    assert abs(got[0.001] - 3) <= 1 and abs(got[0.003] - 4) <= 1 and abs(got[0.01] - 7) <= 1
    assert got[0.02] >= 7 and got[0.05] == 8


def test_kmeans_finds_separated_clusters_and_is_seeded():
    x = np.concatenate([np.full(50, -1.0), np.full(50, 2.0), np.full(50, 5.0)]) + np.linspace(0, 0.01, 150)
    centres, inertia = kmeans_1d(x, 3, seed=0)
    assert np.allclose(centres, [-0.9983, 2.005, 5.0083], atol=1e-3)
    assert inertia < 0.01
    rng = np.random.default_rng(5)
    y = rng.normal(size=2000)
    assert kmeans_1d(y, 16, seed=7)[1] == kmeans_1d(y, 16, seed=7)[1]


def test_threshold_and_range_are_options():
    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.05, 4096)
    layer = layer_distortion("c", w, bit_range=(2, 8))
    assert bits_from_distortion(layer, tau=1e9) == 2
    assert bits_from_distortion(layer, tau=0.0) == 8  # nothing qualifies: the largest candidate
    assert bits_from_distortion(layer, tau=1e9, bit_range=(4, 6)) == 4
    assert bits_from_distortion(layer, tau=0.0, bit_range=(4, 6)) == 6


def test_tau_for_target_mean_bits_hits_the_target():
    rng = np.random.default_rng(4)
    weights = {f"c{i}": rng.normal(0, s, 2000) for i, s in enumerate((0.2, 0.05, 0.01))}
    bits, tau, layers = search_bits(weights, target_mean_bits=4.0)
    numel = {layer.name: layer.numel for layer in layers}
    assert mean_bits(bits, numel) <= 4.0
    # a slightly smaller tau would miss the target: the chosen tau is the smallest
    assert tau_for_mean_bits(layers, 4.0) == tau
    with pytest.raises(EdgeflError):
        tau_for_mean_bits(layers, 1.0)


def test_bad_range_is_a_clear_error():
    with pytest.raises(EdgeflError, match="bit range"):
        search_bits({"c": np.ones(10)}, bit_range=(6, 3))


@settings(max_examples=12, deadline=None)
@given(
    scale=st.floats(1e-4, 1.0),
    n=st.integers(8, 300),
    seed=st.integers(0, 2**16),
    taus=st.lists(st.floats(1e-6, 1e6), min_size=2, max_size=6),
)
def test_bits_never_grow_with_the_threshold(scale, n, seed, taus):
    w = np.random.default_rng(seed).normal(0, scale, n)
    layer = layer_distortion("c", w, bit_range=(2, 8), seed=seed)
    bits = [bits_from_distortion(layer, t) for t in sorted(taus)]
    assert bits == sorted(bits, reverse=True) and all(2 <= b <= 8 for b in bits)
    # more centres never fit worse (within k-means' local optimum slack)
    d = [layer.distortion[k] for k in range(2, 9)]
    assert all(b <= a * 1.05 + 1e-12 for a, b in zip(d, d[1:]))
