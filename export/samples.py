"""Real inputs for parity and INT8 calibration, from the checkpoint's dataset or a user file.

Parity uses the test split (the dataset's official one, else train_test_split(0.2, seed=0)),
calibration the train split, so the INT8 scales never see the inputs they are judged on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgefl.errors import EdgeflError


@dataclasses.dataclass
class Samples:
    """Normalised float32 N×C×H×W inputs: ``parity`` (held out), ``calibration``, and their ``source``."""

    parity: np.ndarray
    calibration: np.ndarray
    source: str


def _normalised(x: np.ndarray, preprocessing) -> np.ndarray:
    from edgefl.data import normalize

    return normalize(np.asarray(x, np.float32), preprocessing)


def samples_from_dataset(name_or_path: str, preprocessing, parity_count: int, calib_count: int) -> Samples:
    """Held-out parity inputs and calibration inputs from a dataset edgefl can load."""
    from edgefl.data import load_split

    split = load_split(name_or_path, None, 0)
    prep = preprocessing if preprocessing is not None else split.preprocessing
    how = "official" if split.split["kind"] == "official" else "seed 0"
    return Samples(
        parity=_normalised(split.test.x[:parity_count], prep),
        calibration=_normalised(split.train.x[:calib_count], prep),
        source=f"{name_or_path}: parity on the test split, calibration on the train split ({how})",
    )


def read_samples(path) -> np.ndarray:
    """A user's .npy of inputs, N×C×H×W with N ≥ 2 (never unpickled)."""
    path = Path(path)
    try:
        x = np.load(str(path), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise EdgeflError(f"cannot read samples {path} ({exc}) — give an .npy array N×C×H×W") from None
    if x.ndim != 4 or len(x) < 2:
        raise EdgeflError(f"samples {path} has shape {x.shape}; expected N×C×H×W with N ≥ 2")
    return x


def samples_from_array(x: np.ndarray, preprocessing, source: str, parity_count: int = 2000,
                       calib_count: int = 256) -> Samples:
    """First half of `x` for parity, second half for calibration, both normalised with `preprocessing`."""
    half = len(x) // 2
    return Samples(
        parity=_normalised(x[:half][:parity_count], preprocessing),
        calibration=_normalised(x[half:][:calib_count], preprocessing),
        source=source,
    )


def samples_from_file(path, preprocessing, parity_count: int, calib_count: int) -> Samples:
    """Inputs from a user .npy (N×C×H×W, unnormalised in [0, 1]); first half parity, second calibration."""
    return samples_from_array(read_samples(path), preprocessing, Path(path).name, parity_count, calib_count)


def load_samples(
    config: dict, input_shape, samples_path=None, parity_count: int = 2000, calib_count: int = 256
) -> Samples:
    """Pick the sample source for a checkpoint: a user file, else the dataset named in its config.

    Raises:
        EdgeflError: no source is known, or the samples do not match the model's input shape.
    """
    preprocessing = config.get("preprocessing")
    if samples_path is not None:
        chosen = samples_from_file(samples_path, preprocessing, parity_count, calib_count)
    elif config.get("data"):
        chosen = samples_from_dataset(config["data"], preprocessing, parity_count, calib_count)
    else:
        raise EdgeflError(
            "the checkpoint names no dataset for parity samples — pass --samples FILE.npy (N×C×H×W)"
        )
    want = tuple(int(d) for d in input_shape)
    if tuple(chosen.parity.shape[1:]) != want:
        raise EdgeflError(
            f"parity samples have shape {tuple(chosen.parity.shape[1:])} but the model takes {want} — "
            "pass --samples FILE.npy or --input-shape to match"
        )
    return chosen
