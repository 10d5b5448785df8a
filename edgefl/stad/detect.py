"""STAD inference: anomaly maps from a trained teacher or student (spec §1.8).

Score paths (a dict registry, see SCORE_PATHS):
* ``gradient`` — the STAD score as the official code computes it: torch autograd of
  L = mean(w · Σ_k (o_k − x)²) w.r.t. the normalised input, then max over bands of |∂L/∂x|; w = STF(x)
  treated as a constant. Works for the teacher and the student.
* ``graph`` — the student's forward-only graph of that same gradient (scoregraph.StudentScoreGraph);
  equal up to float rounding (``path_agreement`` measures it).
* ``recon`` — the weighted reconstruction error (spec edge-note option (c)): max over bands of
  w · Σ_k (o_k − x)²; forward-only by nature. The project default score (config.StadSettings.score).
* ``graph-recon`` — the student's device graph in reconstruction mode.
"""

import dataclasses

import numpy as np
import torch

from edgefl.errors import EdgeflError
from edgefl.stad.metrics import had_metrics
from edgefl.stad.prep import minmax_normalize, select_bands, chw_from_hwc
from edgefl.stad.scoregraph import StudentScoreGraph
from edgefl.stad.stf import stf_weights_torch


def _weights(x: torch.Tensor, use_stf: bool) -> torch.Tensor:
    with torch.no_grad():
        return stf_weights_torch(x) if use_stf else torch.ones_like(x[:, :1])


def gradient_score(model, x: np.ndarray, use_stf: bool = True) -> np.ndarray:
    """Autograd STAD score of a normalised C×H×W cube → H×W."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None].requires_grad_(True)
    w = _weights(xt.detach(), use_stf)
    outs = model(xt)
    loss = (w * sum((o - xt) ** 2 for o in outs)).mean()
    (grad,) = torch.autograd.grad(loss, xt)
    return grad.abs().amax(dim=1)[0].numpy()


def recon_score(model, x: np.ndarray, use_stf: bool = True) -> np.ndarray:
    """Weighted reconstruction error (the approximation): max over bands of w·Σ_k (o_k − x)²."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    with torch.no_grad():
        w = _weights(xt, use_stf)
        err = sum((o - xt) ** 2 for o in model(xt))
        return (w * err).amax(dim=1)[0].numpy()


def graph_score(model, x: np.ndarray, use_stf: bool = True, score: str = "gradient") -> np.ndarray:
    """Forward-only score graph of a student (the device path) on a normalised C×H×W cube → H×W."""
    if not hasattr(model, "block1"):
        raise EdgeflError(
            "the forward-only score graph exists for the STAD student only — use path 'gradient'"
        )
    graph = StudentScoreGraph(model, use_stf=use_stf, score=score).eval()
    with torch.no_grad():
        return graph(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None])[0].numpy()


def graph_recon_score(model, x: np.ndarray, use_stf: bool = True) -> np.ndarray:
    """The device graph in reconstruction-error mode (same number as ``recon``)."""
    return graph_score(model, x, use_stf, score="recon")


SCORE_PATHS = {
    "gradient": gradient_score,
    "graph": graph_score,
    "recon": recon_score,
    "graph-recon": graph_recon_score,
}


@dataclasses.dataclass
class Detection:
    """An anomaly map (H×W float32) and, when ground truth was given, its HAD metrics."""

    score: np.ndarray
    metrics: dict


def detect_cube(
    model,
    cube_hwb: np.ndarray,
    channels: int,
    band_mode: str,
    *,
    gt=None,
    path: str = "gradient",
    use_stf: bool = True,
    scene: str = "scene",
) -> Detection:
    """Run a STAD network on a raw H×W×B cube (band selection + normalisation included).

    Args:
        model: StadTeacher or StadStudent in eval mode.
        channels, band_mode: the model's recorded band selection.
        gt: optional H×W 0/1 map → metrics.
        path: a key of SCORE_PATHS.
    """
    if path not in SCORE_PATHS:
        raise EdgeflError(f"unknown score path {path!r} — choose one of: {', '.join(sorted(SCORE_PATHS))}")
    x = chw_from_hwc(minmax_normalize(select_bands(cube_hwb, channels, band_mode, scene), scene))
    model.eval()
    score = SCORE_PATHS[path](model, x, use_stf).astype(np.float32)
    return Detection(score, had_metrics(score, gt) if gt is not None else {})


def path_agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    """How close two score maps are: max abs / max relative difference, Pearson and Spearman correlation."""
    a, b = np.asarray(reference, np.float64).ravel(), np.asarray(other, np.float64).ravel()
    from scipy.stats import spearmanr

    diff = np.abs(a - b)
    varied = a.std() > 0 and b.std() > 0
    corr = float(np.corrcoef(a, b)[0, 1]) if varied else float("nan")
    rank = float(spearmanr(a, b)[0]) if varied else float("nan")
    return {
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float(diff.max() / max(np.abs(a).max(), 1e-30)),
        "pearson": corr,
        "spearman": rank,
    }
