"""Shared fixtures of the method tests."""

import numpy as np
import pytest

from edgefl.data import ArrayData


@pytest.fixture
def blob_data():
    """``blob_data(n, seed)``: 12×12 images of two classes, a bright blob in the top or the bottom half."""

    def make(n: int, seed: int) -> ArrayData:
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, n)
        x = rng.uniform(0, 0.3, (n, 1, 12, 12)).astype(np.float32)
        for i, label in enumerate(y):
            x[i, 0, (7 if label else 1) : (10 if label else 4), 4:7] = 1.0
        return ArrayData(x, y.astype(np.int64))

    return make
