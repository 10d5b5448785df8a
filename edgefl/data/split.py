"""Seeded, stratified train/test split."""

import numpy as np

from edgefl.data.arrays import ArrayData
from edgefl.errors import EdgeflError


def split_indices(labels: np.ndarray, test_fraction: float, seed: int):
    """Stratified split: each class contributes round(test_fraction · count) test examples."""
    if not 0.0 < test_fraction < 1.0:
        raise EdgeflError(f"test fraction {test_fraction} must be between 0 and 1 (e.g. 0.2)")
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test.append(idx[: int(round(test_fraction * len(idx)))])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


def train_test_split(data: ArrayData, test_fraction: float = 0.2, seed: int = 0):
    """Split into (train, test) ArrayData, stratified by label and reproducible by seed."""
    train, test = split_indices(data.y, test_fraction, seed)
    return data.subset(train), data.subset(test)
