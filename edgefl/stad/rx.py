"""Global RX (Reed–Xiaoli) anomaly detector: Mahalanobis distance to the image-wide mean (pure numpy)."""

import numpy as np


def rx_scores(cube: np.ndarray) -> np.ndarray:
    """Global RX score of every pixel.

    r(p) = (x_p − μ)ᵀ Σ⁺ (x_p − μ) with μ, Σ the image-wide mean and sample covariance. Σ⁺ is the
    Moore–Penrose pseudo-inverse (the official code uses an explicit inverse, which fails on singular
    covariances — many bands, few pixels). Computed in float64. RX is invariant to a global affine
    rescaling of the cube, so normalisation does not change the ranking.

    Args:
        cube: H×W×B.
    Returns:
        H×W float64 scores (≥ 0, higher = more anomalous).
    """
    h, w, b = cube.shape
    x = cube.reshape(h * w, b).astype(np.float64)
    xc = x - x.mean(axis=0)
    cov = xc.T @ xc / max(h * w - 1, 1)
    scores = np.einsum("ij,jk,ik->i", xc, np.linalg.pinv(cov, hermitian=True), xc)
    return np.maximum(scores, 0.0).reshape(h, w)
