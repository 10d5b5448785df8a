"""Band selection and normalisation of hyperspectral cubes for STAD (pure numpy).

Band selection is an explicit, recorded parameter (spec §1.1, pitfall "C mismatch"). ``"first"`` takes
the first C bands, as the official code does (the project default, C = 10); ``"uniform"`` takes C bands
evenly spaced over the whole spectrum. The choice matters a lot for global RX on the shipped scenes
(first 10 bands: mean AUC(D,F) 0.954, abu-beach-4 0.864; 10 evenly spaced bands: mean 0.9945; all bands:
0.9896) — bench/stad.py reports RX on all three inputs. Normalisation is one global min-max over the
selected cube, the same in the training and the test path (the official test path skips it; the project
does not).
"""

import numpy as np

from edgefl.errors import EdgeflError


def _first(n_bands: int, channels: int) -> np.ndarray:
    return np.arange(channels)


def _uniform(n_bands: int, channels: int) -> np.ndarray:
    return np.linspace(0, n_bands - 1, channels).round().astype(np.int64)


# name → (n_bands, channels) -> band indices
BAND_SELECTORS = {"first": _first, "uniform": _uniform}


def band_indices(n_bands: int, channels: int, mode: str = "uniform", scene: str = "scene") -> np.ndarray:
    """Indices of the `channels` bands STAD uses out of `n_bands`.

    Args:
        n_bands: bands in the cube.
        channels: C, the bands the model was built for.
        mode: a key of BAND_SELECTORS.
        scene: name used in error messages.
    Returns:
        int64 array of length `channels`, strictly increasing.
    """
    if mode not in BAND_SELECTORS:
        raise EdgeflError(
            f"unknown band selection {mode!r} — choose one of: {', '.join(sorted(BAND_SELECTORS))}"
        )
    if channels < 2:
        raise EdgeflError(f"STAD needs at least 2 bands, got channels={channels} — use --channels 10 or more")
    if n_bands < channels:
        raise EdgeflError(
            f"scene {scene}: only {n_bands} bands but the model uses {channels} — use a cube with "
            f">= {channels} bands or a model trained with fewer channels"
        )
    return BAND_SELECTORS[mode](n_bands, channels)


def select_bands(cube: np.ndarray, channels: int, mode: str = "uniform", scene: str = "scene") -> np.ndarray:
    """H×W×B cube → H×W×C float32 cube of the selected bands."""
    if cube.ndim != 3:
        raise EdgeflError(f"scene {scene}: cube must be rows × cols × bands, got shape {cube.shape}")
    return np.ascontiguousarray(
        cube[:, :, band_indices(cube.shape[2], channels, mode, scene)], dtype=np.float32
    )


def minmax_normalize(cube: np.ndarray, scene: str = "scene") -> np.ndarray:
    """One global min-max over all pixels and bands → float32 in [0, 1]."""
    lo, hi = float(np.min(cube)), float(np.max(cube))
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise EdgeflError(f"scene {scene}: cube contains NaN/Inf — repair or drop those bands")
    if hi <= lo:
        raise EdgeflError(f"scene {scene}: cube is constant ({lo}) — nothing to detect; check the file")
    return ((cube - lo) / (hi - lo)).astype(np.float32)


def chw_from_hwc(cube: np.ndarray) -> np.ndarray:
    """H×W×C → C×H×W (contiguous float32), the tensor layout of the networks."""
    return np.ascontiguousarray(np.transpose(cube, (2, 0, 1)), dtype=np.float32)


def prepare_cube(cube: np.ndarray, channels: int, mode: str = "uniform", scene: str = "scene") -> np.ndarray:
    """Raw H×W×B cube → normalised C×H×W float32 network input (band selection, then global min-max)."""
    return chw_from_hwc(minmax_normalize(select_bands(cube, channels, mode, scene), scene))
