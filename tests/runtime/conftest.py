"""Fixtures for the runtime tests (Python 3.6 compatible: these also run on the edge stack)."""
import os
import shutil
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.agent import TrainResult, Trainer


class ShiftTrainer(Trainer):
    """Deterministic 'training': local = global + shift (so aggregates are hand-computable)."""

    def __init__(self, shift, num_examples):
        self.shift, self.num_examples = float(shift), int(num_examples)
        self.calls = 0

    def train(self, global_model, options):
        self.calls += 1
        out = OrderedDict((n, v + np.float32(self.shift)) for n, v in global_model.items())
        return TrainResult(out, self.num_examples, {"loss": self.shift})


@pytest.fixture
def bundle(tmp_path):
    """A writable copy of data/tiny_bundle (a 4x4 input, 3-class bundle made by make_tiny_bundle.py)."""
    dst = str(tmp_path / "bundle")
    shutil.copytree(os.path.join(os.path.dirname(__file__), "data", "tiny_bundle"), dst)
    return dst


@pytest.fixture
def shift_trainer():
    return ShiftTrainer


@pytest.fixture
def small_model():
    rng = np.random.RandomState(0)
    return OrderedDict([("conv.weight", rng.randn(4, 2, 3, 3).astype(np.float32)),
                        ("fc.bias", rng.randn(5).astype(np.float32)),
                        ("fc.weight", rng.randn(5, 8).astype(np.float32))])


@pytest.fixture
def random_delta():
    def make(seed=0, scale=1e-2):
        rng = np.random.RandomState(seed)
        return OrderedDict([("conv.weight", (rng.standard_t(3, (16, 8, 3, 3)) * scale)
                             .astype(np.float32)),
                            ("fc.bias", (rng.randn(10) * scale).astype(np.float32)),
                            ("fc.weight", (rng.standard_t(3, (10, 300)) * scale)
                             .astype(np.float32))])
    return make


def _test_module(filename):
    """One of this folder's test files as a module, for its helpers (``--import-mode=importlib``
    puts no test folder on sys.path)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), filename)
    spec = importlib.util.spec_from_file_location("edgefl_runtime_kit_" + filename[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def kit():
    """The helpers of test_aggregator.py (announce, make_update, statuses) for other test files."""
    return _test_module("test_aggregator.py")


@pytest.fixture(scope="session")
def foldkit():
    """The helpers of test_fold.py (SHAPES, _fold, _update, _sums, _same) for its properties."""
    return _test_module("test_fold.py")
