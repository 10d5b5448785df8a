"""GHOST hybrid quantization (HQ): one bit width per conv, chosen once by 1-D k-means.

For every conv layer the raw full-precision weights are clustered with ``2**n`` centres for
``n`` in the candidate range; the layer gets the smallest ``n`` whose distortion (mean squared
distance to the nearest centre, times 1e6) is below ``tau``. The threshold is absolute in weight
units, so larger-magnitude layers get more bits (GHOST's HQ: Zhang et al., "Guided Hybrid
Quantization ... via One-to-one Self-teaching", IEEE TGRS 2023, arXiv 2301.00131).

Everything here is a pure function over numpy arrays except :func:`conv_weights_from_model`,
which only reads a model's parameters. Unlike the official code the k-means is seeded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from edgefl.errors import EdgeflError

DISTORTION_SCALE = 1e6  # the official code writes 10e5
DEFAULT_TAU = 0.1
DEFAULT_BIT_RANGE = (2, 8)


@dataclass(frozen=True)
class LayerDistortion:
    """Distortion of one layer's weights for every candidate bit width.

    Attributes:
        name: module name of the conv layer.
        numel: number of weights.
        distortion: ``{bits: mean squared distance to the 2**bits centres × 1e6}``.
    """

    name: str
    numel: int
    distortion: dict[int, float]


def _kmeans_pp_init(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on 1-D data (distinct values only, so no duplicate centres)."""
    centres = np.empty(k, dtype=np.float64)
    centres[0] = values[rng.integers(len(values))]
    d2 = (values - centres[0]) ** 2
    for i in range(1, k):
        total = d2.sum()
        if total <= 0.0:  # every point already sits on a centre
            centres[i:] = centres[0]
            break
        idx = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
        centres[i] = values[min(idx, len(values) - 1)]
        np.minimum(d2, (values - centres[i]) ** 2, out=d2)
    return centres


def _cluster_edges(sorted_x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Boundaries of the nearest-centre clusters in sorted data: cluster j is ``x[e[j]:e[j+1]]``.

    In 1-D the nearest-centre regions are intervals split at the midpoints between sorted centres,
    so an assignment costs K binary searches instead of N.
    """
    mids = (centres[1:] + centres[:-1]) / 2.0
    return np.concatenate(([0], np.searchsorted(sorted_x, mids, side="right"), [sorted_x.size]))


def kmeans_1d(values: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 50) -> tuple[np.ndarray, float]:
    """Lloyd's k-means on scalars with k-means++ seeding.

    Args:
        values: any-shaped array; flattened.
        k: number of centres (clipped to the number of values).
        seed: seed of the k-means++ draw.
        max_iter: Lloyd iterations at most.

    Returns:
        (sorted centres, inertia = sum of squared distances to the nearest centre).
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size == 0:
        raise ValueError("kmeans_1d needs at least one value")
    k = max(1, min(int(k), x.size))
    unique = np.unique(x)
    if unique.size <= k:  # exact: every distinct value gets its own centre
        return unique, 0.0
    rng = np.random.default_rng(seed)
    centres = np.sort(_kmeans_pp_init(unique, k, rng))
    prefix = np.concatenate(([0.0], np.cumsum(x)))
    for _ in range(max_iter):
        edges = _cluster_edges(x, centres)
        counts = np.diff(edges)
        sums = prefix[edges[1:]] - prefix[edges[:-1]]
        new = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
        new.sort()
        if np.array_equal(new, centres):
            break
        centres = new
    counts = np.diff(_cluster_edges(x, centres))
    inertia = float(((x - np.repeat(centres, counts)) ** 2).sum())
    return centres, inertia


def layer_distortion(
    name: str, weights: np.ndarray, *, bit_range: tuple[int, int] = DEFAULT_BIT_RANGE, seed: int = 0
) -> LayerDistortion:
    """Distortion ``D_n = inertia(k-means with min(2**n, N) centres) / N × 1e6`` for each candidate n."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    lo, hi = _check_range(bit_range)
    table = {}
    for n in range(lo, hi + 1):
        _, inertia = kmeans_1d(w, 2**n, seed=seed + n)
        table[n] = inertia / w.size * DISTORTION_SCALE
    return LayerDistortion(name=name, numel=int(w.size), distortion=table)


def bits_from_distortion(
    layer: LayerDistortion, tau: float, *, bit_range: tuple[int, int] = DEFAULT_BIT_RANGE
) -> int:
    """Smallest candidate n with ``D_n < tau``; the largest candidate when none qualifies."""
    lo, hi = _check_range(bit_range)
    for n in range(lo, hi + 1):
        if n in layer.distortion and layer.distortion[n] < tau:
            return n
    return hi


def bits_for_layers(
    layers: Iterable[LayerDistortion], tau: float, *, bit_range: tuple[int, int] = DEFAULT_BIT_RANGE
) -> dict[str, int]:
    """Apply the HQ rule to every layer: ``{name: bits}`` in the given order."""
    return {layer.name: bits_from_distortion(layer, tau, bit_range=bit_range) for layer in layers}


def mean_bits(bits: Mapping[str, int], weights: Mapping[str, float] | None = None) -> float:
    """Mean bit width, weighted by ``weights[name]`` (e.g. parameter counts or MACs) when given."""
    if not bits:
        return 0.0
    w = {name: float(weights[name]) if weights else 1.0 for name in bits}
    return sum(bits[n] * w[n] for n in bits) / sum(w.values())


def tau_for_mean_bits(
    layers: list[LayerDistortion],
    target: float,
    *,
    bit_range: tuple[int, int] = DEFAULT_BIT_RANGE,
) -> float:
    """Smallest threshold whose parameter-weighted mean bit width is at most ``target``.

    Bits only fall as tau grows, and they change only where tau crosses a distortion value, so it
    suffices to try just above each of them.

    Raises:
        EdgeflError: when even the largest useful tau leaves the mean above ``target``.
    """
    numel = {layer.name: layer.numel for layer in layers}
    candidates = sorted({v for layer in layers for v in layer.distortion.values()})
    for value in [0.0, *candidates]:
        tau = float(np.nextafter(value, np.inf))
        if mean_bits(bits_for_layers(layers, tau, bit_range=bit_range), numel) <= target:
            return tau
    raise EdgeflError(
        f"no threshold reaches a mean of {target} bits within bit range {bit_range} — "
        "raise the target mean bits or lower the minimum bit width"
    )


def conv_weights_from_model(model, conv_types: tuple | None = None) -> dict[str, np.ndarray]:
    """``{module name: FP weights as numpy}`` of every conv layer, in definition order."""
    import torch.nn as nn

    types = conv_types or (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return {
        name: module.weight.detach().cpu().double().numpy()
        for name, module in model.named_modules()
        if isinstance(module, types)
    }


def search_bits(
    weights: Mapping[str, np.ndarray],
    *,
    tau: float | None = DEFAULT_TAU,
    target_mean_bits: float | None = None,
    bit_range: tuple[int, int] = DEFAULT_BIT_RANGE,
    seed: int = 0,
) -> tuple[dict[str, int], float, list[LayerDistortion]]:
    """Run the HQ search on named weight tensors.

    Args:
        weights: ``{layer name: FP weights}`` in definition order.
        tau: distortion threshold (ignored when ``target_mean_bits`` is given).
        target_mean_bits: pick tau so the parameter-weighted mean bit width is at most this.
        bit_range: (min, max) candidate bit widths, inclusive.
        seed: base seed; layer i uses ``seed + 1000 * i``.

    Returns:
        (``{name: bits}``, the tau used, the per-layer distortion tables).
    """
    lo, hi = _check_range(bit_range)
    layers = [
        layer_distortion(name, w, bit_range=(lo, hi), seed=seed + 1000 * i)
        for i, (name, w) in enumerate(weights.items())
    ]
    if target_mean_bits is not None:
        tau = tau_for_mean_bits(layers, target_mean_bits, bit_range=(lo, hi))
    if tau is None or tau <= 0:
        raise EdgeflError(
            "threshold tau must be a positive number — pass e.g. tau=0.1 or a target mean bit width"
        )
    return bits_for_layers(layers, tau, bit_range=(lo, hi)), float(tau), layers


def _check_range(bit_range: tuple[int, int]) -> tuple[int, int]:
    lo, hi = int(bit_range[0]), int(bit_range[1])
    if not 1 <= lo <= hi <= 16:
        raise EdgeflError(f"bit range {bit_range} is invalid — use 1 <= min <= max <= 16, e.g. (2, 8)")
    return lo, hi
