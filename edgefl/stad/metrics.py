"""Hyperspectral anomaly-detection metrics (spec §2) and the two figures (ROC curve, detection map).

Per scene: the score is min-max normalised to [0, 1]; on 30,000 thresholds τ evenly spaced in [0, 1] a
pixel is detected iff s ≥ τ; P_D(τ) and P_F(τ) are the detected fractions of anomaly and background
pixels. AUC(D,F) is the ROC area — computed exactly (rank statistic, ties count half, equal to sklearn's
``roc_auc_score``); ``auc_df_grid`` is the literature's 30k-threshold trapezoid, for comparison.
AUC(F,τ) (lower is better), AUC(D,τ) and SNPR = 10·log10(AUC(D,τ)/AUC(F,τ)) dB use the τ grid, and the
3-D ROC combinations (TD, BS, TDBS, ODP) follow. A dataset score is the mean of per-scene values.
"""

import dataclasses

import numpy as np

from edgefl.errors import EdgeflError

N_THRESHOLDS = 30000
_FTAU_FLOOR = 1e-12  # SNPR of a map with zero false-alarm area would be +inf; report a large finite value


@dataclasses.dataclass
class ThresholdCurves:
    """τ grid (ascending) and P_D(τ), P_F(τ) on it."""

    taus: np.ndarray
    pd: np.ndarray
    pf: np.ndarray


def _check(score: np.ndarray, gt: np.ndarray):
    score = np.asarray(score, dtype=np.float64).ravel()
    gt = np.asarray(gt).ravel()
    if score.shape != gt.shape:
        raise EdgeflError(
            f"score map has {score.size} pixels but the ground truth {gt.size} — shapes must match"
        )
    if not np.isfinite(score).all():
        raise EdgeflError("score map contains NaN/Inf — check the detector input")
    pos = gt.astype(bool)
    if pos.all() or not pos.any():
        raise EdgeflError("ground truth must contain both anomaly (1) and background (0) pixels")
    return score, pos


def normalize_score(score: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant map becomes all zeros."""
    s = np.asarray(score, dtype=np.float64)
    span = s.max() - s.min()
    return (s - s.min()) / span if span > 0 else np.zeros_like(s)


def roc_auc(score: np.ndarray, gt: np.ndarray) -> float:
    """Exact ROC AUC(D,F): P(score of an anomaly > score of a background pixel), ties counted ½."""
    from scipy.stats import rankdata

    s, pos = _check(score, gt)
    ranks = rankdata(s)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def threshold_curves(score: np.ndarray, gt: np.ndarray, n_thresholds: int = N_THRESHOLDS) -> ThresholdCurves:
    """P_D and P_F on `n_thresholds` evenly spaced τ in [0, 1] over the min-max normalised score."""
    s, pos = _check(score, gt)
    s = normalize_score(s)
    taus = np.linspace(0.0, 1.0, n_thresholds)
    anom, back = np.sort(s[pos]), np.sort(s[~pos])
    pd = (anom.size - np.searchsorted(anom, taus, side="left")) / anom.size
    pf = (back.size - np.searchsorted(back, taus, side="left")) / back.size
    return ThresholdCurves(taus, pd, pf)


def had_metrics(score: np.ndarray, gt: np.ndarray, n_thresholds: int = N_THRESHOLDS) -> dict:
    """All per-scene HAD metrics of a score map against a binary ground truth.

    Returns:
        dict with auc_df (exact), auc_df_grid, auc_ftau, auc_dtau, snpr_db, auc_td, auc_bs, auc_tdbs, auc_odp.
    """
    c = threshold_curves(score, gt, n_thresholds)
    auc_df = roc_auc(score, gt)
    auc_df_grid = float(np.sum((c.pf[:-1] - c.pf[1:]) * (c.pd[:-1] + c.pd[1:]) / 2.0))
    auc_ftau = float(np.trapezoid(c.pf, c.taus))
    auc_dtau = float(np.trapezoid(c.pd, c.taus))
    return {
        "auc_df": auc_df,
        "auc_df_grid": auc_df_grid,
        "auc_ftau": auc_ftau,
        "auc_dtau": auc_dtau,
        "snpr_db": float(10.0 * np.log10(auc_dtau / max(auc_ftau, _FTAU_FLOOR)))
        if auc_dtau > 0
        else float("-inf"),
        "auc_td": auc_df + auc_dtau,
        "auc_bs": auc_df - auc_ftau,
        "auc_tdbs": auc_dtau - auc_ftau,
        "auc_odp": auc_df + auc_dtau - auc_ftau,
    }


def mean_metrics(per_scene: list) -> dict:
    """Dataset score: mean of per-scene metric dicts (not a pooled ROC)."""
    if not per_scene:
        return {}
    return {k: float(np.mean([m[k] for m in per_scene])) for k in per_scene[0]}


def save_roc_plot(curves: dict, path, title: str = "ROC") -> None:
    """Write a log-x ROC plot (P_D vs P_F) of several detectors.

    Args:
        curves: label → ThresholdCurves.
        path: output PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    for label, c in curves.items():
        ax.plot(np.maximum(c.pf, 1e-5), c.pd, label=label)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("false alarm rate P_F")
    ax.set_ylabel("detection rate P_D")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)


def save_detection_map(score: np.ndarray, path, gt=None, title: str = "anomaly score") -> None:
    """Write the normalised anomaly map as a PNG (next to the ground truth when given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(normalize_score(score), title)] + (
        [(np.asarray(gt), "ground truth")] if gt is not None else []
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    images = [
        ax.imshow(img, cmap="inferno" if i == 0 else "gray", vmin=0.0, vmax=1.0)
        for i, (ax, (img, _)) in enumerate(zip(axes[0], panels))
    ]
    for ax, (_, name) in zip(axes[0], panels):
        ax.set_title(name)
        ax.axis("off")
    fig.colorbar(images[0], ax=axes[0][0], fraction=0.046)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)
