"""Small Target Filter (STF, spec §1.7): an RX-based spatial weight that keeps only small bright targets.

    w = max(f − median(f), 0),   f = bilateral(rescale01(RX(x)))

Two implementations of the same definition:
* ``stf_weights`` — numpy reference (float64, RX with a pseudo-inverse); the oracle in tests and the
  figure in the STF check.
* ``stf_weights_torch`` — torch ops only (mean, matmul, an unrolled sweep-operator inverse, slices,
  a bisection median), so it lives *inside* the exported score graph and the device needs no numpy
  port, no OpenCV and no scipy. Σ gets a tiny ridge (1e-10 · trace/C) so the unpivoted sweep never divides
  by zero. RX runs in float64 inside the graph too (Σ can be ill-conditioned; in float32 onnxruntime and
  torch drift apart by ~1e-4), so the graph matches the numpy reference to ~1e-6 (tests/stad/test_stf.py).

Choices (documented deviations from the official code): RX is rescaled to [0, 1] (not [0, 255]) with the
colour sigma scaled the same way (80/255), which gives the same filter; the bilateral filter is OpenCV's
for d = 3 and sigmaSpace = 0 — OpenCV then uses sigma_space = 1 and a radius-1 *circular* window, i.e. the
pixel and its 4 neighbours, border reflect-101 — with an exact Gaussian colour weight (OpenCV
interpolates a lookup table); the median is the lower median (the ⌈P/2⌉-th smallest value).
"""

import numpy as np

from edgefl.stad.rx import rx_scores

SIGMA_COLOR = 80.0 / 255.0
SIGMA_SPACE = 1.0
RIDGE = 1e-10
MEDIAN_BISECTIONS = 32
_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def rescale01(a: np.ndarray) -> np.ndarray:
    span = a.max() - a.min()
    return (a - a.min()) / span if span > 0 else np.zeros_like(a)


def bilateral_cross(
    f: np.ndarray, sigma_color: float = SIGMA_COLOR, sigma_space: float = SIGMA_SPACE
) -> np.ndarray:
    """Bilateral filter over the pixel and its 4 neighbours (OpenCV d=3), border reflect-101."""
    h, w = f.shape
    p = np.pad(f, 1, mode="reflect")
    num, den = f.copy(), np.ones_like(f)
    spatial = np.exp(-1.0 / (2.0 * sigma_space**2))
    for dy, dx in _NEIGHBOURS:
        n = p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        wt = spatial * np.exp(-((n - f) ** 2) / (2.0 * sigma_color**2))
        num += wt * n
        den += wt
    return num / den


def lower_median(a: np.ndarray) -> float:
    flat = np.ravel(a)
    k = (flat.size - 1) // 2
    return float(np.partition(flat, k)[k])


def stf_weights(cube: np.ndarray) -> np.ndarray:
    """STF weight map of a normalised H×W×C cube (numpy reference).

    Returns:
        H×W float64 weights ≥ 0; about half the pixels are exactly 0.
    """
    f = bilateral_cross(rescale01(rx_scores(cube)))
    return np.maximum(f - lower_median(f), 0.0)


def sweep_inverse(a):
    """Inverse of a batch of SPD matrices N×C×C by C unrolled sweeps (matmul/elementwise ops only)."""
    import torch

    c = a.shape[-1]
    eye = torch.eye(c, dtype=a.dtype)
    for k in range(c):
        e = eye[k]
        col = a[:, :, k]  # N×C (== row k: symmetric)
        d = a[:, k, k].reshape(-1, 1, 1)
        outer = col.unsqueeze(2) * col.unsqueeze(1)
        cross = e.reshape(1, c, 1) * col.unsqueeze(1) + col.unsqueeze(2) * e.reshape(1, 1, c)
        a = a - outer / d + cross / d - (2.0 + 1.0 / d) * (e.reshape(c, 1) * e.reshape(1, c))
    return -a


def rx_scores_torch(x):
    """Global RX of N×C×H×W → N×(H·W), Σ ridge-regularised, inverse by sweeps."""
    import torch

    n, c = x.shape[0], x.shape[1]
    flat32 = x.reshape(n, c, -1)
    # Σ can be ill-conditioned: float64 keeps engines in step. The transposed copy is made *before* the
    # cast, so no Transpose feeds a double MatMul (onnxruntime 1.10 fuses those into FusedMatMul, which
    # has no double kernel).
    flat, flat_t = flat32.to(torch.float64), flat32.transpose(1, 2).to(torch.float64)
    count = torch.ones_like(flat[:, :1, :]).sum(dim=2, keepdim=True)  # a tensor, so H·W stays dynamic
    xc = flat - flat.mean(dim=2, keepdim=True)
    xc_t = flat_t - flat_t.mean(dim=1, keepdim=True)
    cov = torch.matmul(xc, xc_t) / (count - 1.0)
    eye = torch.eye(c, dtype=torch.float64)
    trace = (cov * eye).sum(dim=(1, 2), keepdim=True)
    cov = cov + RIDGE * trace / c * eye
    return (torch.matmul(sweep_inverse(cov), xc) * xc).sum(dim=1).to(x.dtype)


def _bilateral_cross_torch(f):
    import torch
    import torch.nn.functional as F

    p = F.pad(f, (1, 1, 1, 1), mode="reflect")
    shifted = (p[:, :, :-2, 1:-1], p[:, :, 2:, 1:-1], p[:, :, 1:-1, :-2], p[:, :, 1:-1, 2:])
    spatial = float(np.exp(-1.0 / (2.0 * SIGMA_SPACE**2)))
    num, den = f, torch.ones_like(f)
    for n in shifted:
        wt = spatial * torch.exp(-((n - f) ** 2) / (2.0 * SIGMA_COLOR**2))
        num = num + wt * n
        den = den + wt
    return num / den


def _lower_median_torch(flat):
    """Lower median of each row of N×P values in [0, 1] by bisection (no sort: TensorRT-friendly)."""
    import torch

    k = torch.floor((torch.ones_like(flat).sum(dim=1, keepdim=True) + 1.0) / 2.0)
    lo = torch.zeros_like(k)
    hi = torch.ones_like(k)
    for _ in range(MEDIAN_BISECTIONS):
        mid = (lo + hi) / 2.0
        enough = (flat <= mid).to(flat.dtype).sum(dim=1, keepdim=True) >= k
        hi = torch.where(enough, mid, hi)
        lo = torch.where(enough, lo, mid)
    return hi


def stf_weights_torch(x):
    """STF weights of a normalised N×C×H×W tensor → N×1×H×W (export-friendly torch ops)."""
    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    r = rx_scores_torch(x)
    lo, hi = r.min(dim=1, keepdim=True).values, r.max(dim=1, keepdim=True).values
    r = (r - lo) / (hi - lo + 1e-12)
    f = _bilateral_cross_torch(r.reshape(n, 1, h, w))
    med = _lower_median_torch(f.reshape(n, -1))
    return (f - med.reshape(n, 1, 1, 1)).clamp(min=0.0)
