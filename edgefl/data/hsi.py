"""Hyperspectral scenes: a rows × cols × bands cube with an optional binary anomaly map."""

import dataclasses
from pathlib import Path

import numpy as np

from edgefl.errors import EdgeflError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "datasets" / "hsi"
# name → (cube file, cube key, map file, map key); see edgefl/datasets/ATTRIBUTION.md
SHIPPED_SCENES = {
    "abu-urban-2": ("abu-urban-2.mat", "data", "abu-urban-2.mat", "map"),
    "abu-beach-4": ("abu-beach-4.mat", "data", "abu-beach-4.mat", "map"),
    "hydice": ("HYDICE_data.mat", "data", "HYDICE_data.mat", "map"),
    "pavia": ("dataPavia.mat", "PaviaCenter", "maskPavia.mat", "mask"),
}
CUBE_KEYS = ("data", "cube", "X", "hsi", "PaviaCenter")
MAP_KEYS = ("map", "gt", "mask", "groundtruth", "GT")
MIN_BANDS = 3


@dataclasses.dataclass
class HSIScene:
    """cube: H×W×B float32; gt: H×W uint8 in {0, 1} (1 = anomaly) or None."""

    cube: np.ndarray
    gt: np.ndarray
    name: str

    @property
    def shape(self):
        return self.cube.shape


def _read_mat(path: Path) -> dict:
    from scipy.io import loadmat  # host-only dependency, imported where used

    try:
        return {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
    except (ValueError, TypeError, OSError, NotImplementedError) as e:
        raise EdgeflError(f"{path.name} is not a readable MATLAB v5 file ({e})"
                          " — save it with scipy or -v7") from None


def _pick(arrays: dict, key, candidates, path: Path, what: str) -> np.ndarray:
    if key:
        if key not in arrays:
            raise EdgeflError(f"{path.name} has no variable {key!r} (it has {sorted(arrays)})"
                              " — pass the right key")
        return arrays[key]
    for k in candidates:
        if k in arrays:
            return arrays[k]
    raise EdgeflError(f"{path.name}: no {what} variable among {sorted(arrays)} — pass its key explicitly")


def _read_array(path: Path, key, candidates, what: str) -> np.ndarray:
    if not path.is_file():
        raise EdgeflError(f"hyperspectral file {path} not found — check the path")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as e:
            raise EdgeflError(f"{path.name} is not a plain numeric .npy ({e})"
                              " — save it with numpy.save") from None
    if path.suffix == ".mat":
        return _pick(_read_mat(path), key, candidates, path, what)
    raise EdgeflError(f"{path.name}: unsupported hyperspectral format {path.suffix!r} — use .mat or .npy")


def validate_scene(cube: np.ndarray, gt, name: str, min_bands: int = MIN_BANDS) -> HSIScene:
    """Check shapes and values; return a float32 scene. Raises EdgeflError naming the problem."""
    if cube.ndim != 3:
        raise EdgeflError(f"scene {name}: cube must be rows × cols × bands, got shape {cube.shape}")
    if cube.shape[2] < min_bands:
        raise EdgeflError(f"scene {name}: only {cube.shape[2]} bands, need at least {min_bands}"
                          " — use the full cube")
    cube = cube.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(cube).all(axis=(0, 1)))
    if bad.size:
        raise EdgeflError(
            f"scene {name}: band(s) {bad[:5].tolist()} contain NaN/Inf"
            " — drop or repair them (e.g. water-absorption bands)"
        )
    if gt is not None:
        gt = np.asarray(gt)
        if gt.shape != cube.shape[:2]:
            raise EdgeflError(
                f"scene {name}: ground-truth map is {gt.shape} but the cube is {cube.shape[:2]}"
                " — they must match"
            )
        values = np.unique(gt)
        if not set(values.tolist()) <= {0, 1}:
            raise EdgeflError(f"scene {name}: ground-truth map must be 0/1,"
                              f" found values {values[:5].tolist()}")
        gt = gt.astype(np.uint8)
    return HSIScene(cube, gt, name)


def load_hsi_scene(path_or_name, cube_key=None, gt_key=None, gt_path=None,
                   min_bands: int = MIN_BANDS) -> HSIScene:
    """Load a shipped scene by name or a `.mat`/`.npy` file (ground truth from the same `.mat` or `gt_path`).

    Args:
        path_or_name: one of SHIPPED_SCENES, or a path.
        cube_key, gt_key: variable names inside `.mat` files (guessed from common names if None).
        gt_path: separate ground-truth file (`.mat` or `.npy`).
    """
    name = str(path_or_name)
    if name in SHIPPED_SCENES:
        cube_file, cube_key, gt_file, gt_key = SHIPPED_SCENES[name]
        path, gt_path = SHIPPED_DIR / cube_file, SHIPPED_DIR / gt_file
    else:
        path = Path(path_or_name)
        name = path.stem
    cube = _read_array(path, cube_key, CUBE_KEYS, "cube")
    gt = None
    if gt_path is not None:
        gt = _read_array(Path(gt_path), gt_key, MAP_KEYS, "ground-truth map")
    elif path.suffix == ".mat":
        arrays = _read_mat(path)
        if gt_key or any(k in arrays for k in MAP_KEYS):
            gt = _pick(arrays, gt_key, MAP_KEYS, path, "ground-truth map")
    return validate_scene(np.asarray(cube), gt, name, min_bands)
