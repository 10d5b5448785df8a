"""What the constellation learns: features of the shipped MNIST split non-IID across satellites.

The federation trains the classifier head (softmax regression) with the runtime's numpy head
trainer — the TX2 path. Features are either the normalised pixels (no model needed; fast for
tests and benches) or the penultimate activations of an exported bundle, computed with the
runtime's inference engine exactly as a device computes them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefl.errors import EdgeflError


@dataclass
class Workload:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray  # features of the test images as the satellites' sensor sees them
    test_y: np.ndarray
    parts: list[np.ndarray]
    num_classes: int
    source: str
    ground_test_x: np.ndarray | None = None  # the same images as on the ground (a sensor effect only)

    @property
    def feature_dim(self) -> int:
        return int(self.train_x.shape[1])


def box_blur(x: np.ndarray, k: int = 5) -> np.ndarray:
    """k×k mean filter over the image plane (N×C×H×W), edges mirrored."""
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="symmetric")
    h, w = x.shape[2], x.shape[3]
    out = np.zeros_like(x, dtype=np.float32)
    for i in range(k):
        for j in range(k):
            out += xp[:, :, i : i + h, j : j + w]
    return out / float(k * k)


# What the satellites' sensor does to images compared with the training data (the in-orbit domain).
SENSOR_EFFECTS = {
    "none": lambda x: x,
    "defocus": lambda x: box_blur(x, 5),  # optics out of focus after launch: 5×5 blur
}
# ... and how a report says so
SENSOR_DESCRIPTIONS = {
    "none": "the camera sees what it saw on the ground",
    "defocus": "the camera is out of focus after launch (a 5×5 blur the model never saw in training)",
}


def pixel_features(x: np.ndarray) -> np.ndarray:
    from edgefl.data import MNIST_PREPROCESSING, normalize

    return normalize(x, MNIST_PREPROCESSING).reshape(len(x), -1).astype(np.float32)


def bundle_features(x: np.ndarray, bundle: str | Path) -> np.ndarray:
    from edgefl.runtime.engine import open_engine, preprocess
    from edgefl.runtime.head_trainer import features_from_engine

    engine = open_engine(str(bundle), "onnxruntime")
    try:
        name = engine.manifest["inputs"][0]["name"]
        return features_from_engine(engine, preprocess(x, engine.manifest.get("preprocessing")), 256, name)
    finally:
        engine.close()


def make_workload(
    n_satellites: int,
    features: str = "pixels",
    alpha: float = 0.5,
    seed: int = 0,
    max_per_satellite: int = 0,
    max_test: int = 0,
    sensor: str = "none",
) -> Workload:
    """Split the shipped MNIST into a test set and one non-IID (Dirichlet α) share per satellite.

    Args:
        features: "pixels" or the path of an exported bundle (its ``features`` output is used).
        max_per_satellite: cap each share (0 = no cap) to keep runs light.
        max_test: score global models on the first max_test test images (0 = all 2,000).
        sensor: what the satellites' camera does to images (SENSOR_EFFECTS); applied to their
            local data and to the test images the global model is scored on (the workload then also
            holds the test images' features without it, ``ground_test_x``).
    """
    from edgefl.data import load_mnist, partition_dirichlet, train_test_split

    train, test = train_test_split(load_mnist(), test_fraction=0.2, seed=seed)
    if sensor not in SENSOR_EFFECTS:
        raise EdgeflError(f"sensor effect {sensor!r} unknown — use one of {sorted(SENSOR_EFFECTS)}")
    effect = SENSOR_EFFECTS[sensor]
    if features == "pixels":
        fx = pixel_features
    elif Path(features).is_dir():

        def fx(x):
            return bundle_features(x, features)
    else:
        raise EdgeflError(f"features {features!r}: use 'pixels' or an exported bundle directory")
    parts = partition_dirichlet(train.y, n_satellites, alpha, seed=seed)
    if max_per_satellite:
        parts = [np.asarray(p)[:max_per_satellite] for p in parts]
    # only the images some satellite holds go through the feature extractor; shares are re-indexed
    used = np.unique(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]))
    where = {int(i): k for k, i in enumerate(used)}
    local_parts = [np.array([where[int(i)] for i in p], dtype=np.int64) for p in parts]
    n_test = min(len(test.y), max_test) if max_test else len(test.y)
    return Workload(
        fx(effect(train.x[used])),
        train.y[used].astype(np.int64),
        fx(effect(test.x[:n_test])),
        test.y[:n_test].astype(np.int64),
        local_parts,
        int(train.y.max()) + 1,
        features,
        None if sensor == "none" else fx(test.x[:n_test]),
    )


def initial_head(work: Workload, init: str = "zeros") -> OrderedDict:
    """The head the federation starts from: zeros (learned from scratch in orbit) or the bundle's own
    exported head (``init="bundle"``: the satellites fine-tune the deployed model)."""
    if init == "bundle":
        if work.source == "pixels":
            raise EdgeflError("init 'bundle' needs bundle features — pass an exported bundle as features")
        from edgefl.runtime.config import load_model_tensors

        return OrderedDict(sorted(load_model_tensors(work.source).items()))
    if init != "zeros":
        raise EdgeflError(f"init {init!r}: use 'zeros' or 'bundle'")
    return OrderedDict(
        [
            ("classifier.bias", np.zeros(work.num_classes, np.float32)),
            ("classifier.weight", np.zeros((work.num_classes, work.feature_dim), np.float32)),
        ]
    )


def head_accuracy(tensors: dict, x: np.ndarray, y: np.ndarray) -> float:
    logits = x @ np.asarray(tensors["classifier.weight"]).T + np.asarray(tensors["classifier.bias"])
    return float((logits.argmax(axis=1) == y).mean())


def write_shares(work: Workload, names: list[str], folder: Path) -> dict[str, Path]:
    """One npz (x = features, y) per satellite; no pickle."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, idx in zip(names, work.parts):
        path = folder / f"{name}.npz"
        np.savez(path, x=work.train_x[idx], y=work.train_y[idx])
        out[name] = path
    return out
