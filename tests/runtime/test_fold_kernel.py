"""The compiled fold kernel gives the numpy fold's integers, and a refusal changes nothing."""
import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime import fold as fold_module
from edgefl.runtime import fold_kernel
from edgefl.runtime.fold import Fold, grid_for

N = 3 * 65536 + 1234  # several numpy blocks and kernel blocks, and a ragged end


def _kernel_or_skip(required):
    """The compiled kernel; without one skipped locally, a failure in CI (conftest.require)."""
    return required(fold_kernel.kernel(), "a C compiler for the compiled fold ({})".format(
        fold_kernel.describe()))


@pytest.fixture
def compiled(required):
    return _kernel_or_skip(required)


def _fold(use_kernel, monkeypatch, weight_bound):
    """A fresh fold whose adds run compiled or on numpy."""
    if not use_kernel:
        monkeypatch.setattr(fold_module.fold_kernel, "kernel", lambda: None)
    model = OrderedDict([("w", np.ones(N, np.float32)), ("b", np.ones(7, np.float32))])
    return Fold(OrderedDict((n, v.shape) for n, v in model.items()), grid_for(model, weight_bound))


def _updates(seed, count, scale):
    rng = np.random.RandomState(seed)
    return [OrderedDict([("w", (rng.randn(N) * scale).astype(np.float32)),
                         ("b", (rng.randn(7) * scale).astype(np.float32))])
            for _ in range(count)]


@pytest.mark.parametrize("weight_bound,coefs,scale", [
    (10 ** 4, [3, 700, 1], 1e-2),           # the fast path (magic number) everywhere
    (2 ** 40, [2 ** 39, 3, 2 ** 38], 1.0),   # large weights: the rint path in some blocks
])
def test_compiled_and_numpy_give_the_same_integers(compiled, monkeypatch, weight_bound, coefs,
                                                    scale):
    ups = _updates(0, len(coefs), scale)
    fast = _fold(True, monkeypatch, weight_bound)
    for up, c in zip(ups, coefs):
        assert fast.add(up, c, c) is None
    fast.subtract(ups[1], coefs[1], coefs[1])
    slow = _fold(False, monkeypatch, weight_bound)
    for up, c in zip(ups, coefs):
        assert slow.add(up, c, c) is None
    slow.subtract(ups[1], coefs[1], coefs[1])
    for name in fast.shapes:
        a, b = fast.exact_sums()[name], slow.exact_sums()[name]
        assert a.dtype == np.int64 and np.array_equal(a, b), name
    if weight_bound == 2 ** 40:  # the slow path was taken: some scaled entry passes 2**50
        bits = fast.grid["w"][0]
        assert np.abs(ups[0]["w"].astype(np.float64)).max() * coefs[0] * 2.0 ** bits > 2.0 ** 50


@pytest.mark.parametrize("use_kernel", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("where", [0, 70000, N - 1])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 2.0 ** 12])
def test_a_bad_entry_anywhere_is_refused_and_the_sum_is_as_before(monkeypatch, required,
                                                                   use_kernel, where, bad):
    if use_kernel:
        _kernel_or_skip(required)
    fold = _fold(use_kernel, monkeypatch, 10 ** 4)
    first, second = _updates(1, 2, 1e-2)
    assert fold.add(first, 5, 5) is None
    before = OrderedDict((n, a.copy()) for n, a in fold.sums.items())
    second["w"][where] = bad  # 'w' comes after 'b': 'b' is folded, then taken out again
    reason = fold.add(second, 9, 9)
    assert reason.startswith("range:" if np.isfinite(bad) else "non-finite:"), reason
    assert all(np.array_equal(fold.sums[n], before[n]) for n in before)
    assert (fold.count, fold.weight, fold.offsets) == (1, 5, 1)


def _python(code, cwd, **env):
    """``code`` in a fresh interpreter (away from the repository root, whose host ``edgefl/``
    would shadow the edge suite's)."""
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=str(cwd),
                          stderr=subprocess.PIPE, env=full, universal_newlines=True)


def test_without_a_compiler_auto_folds_on_numpy_and_compiled_says_why(tmp_path):
    code = ("from edgefl.runtime import fold_kernel as k\n"
            "print(k.describe())\n"
            "k.kernel()\n")
    env = dict(CC="/bin/false", EDGEFL_CACHE_DIR=str(tmp_path))
    auto = _python(code, tmp_path, EDGEFL_FOLD_KERNEL="auto", **env)
    assert auto.returncode == 0 and auto.stdout.startswith("numpy (") and "failed" in auto.stdout
    strict = _python(code, tmp_path, EDGEFL_FOLD_KERNEL="compiled", **env)
    assert strict.returncode != 0
    assert "EDGEFL_FOLD_KERNEL=compiled, but the fold kernel did not build" in strict.stderr
    off = _python(code, tmp_path, EDGEFL_FOLD_KERNEL="numpy")
    assert off.stdout.strip() == "numpy (EDGEFL_FOLD_KERNEL=numpy)"


def test_a_library_built_for_another_cpu_is_never_loaded(monkeypatch):
    # a home folder shared by two machines: each CPU gets its own file
    here = fold_kernel.library_path()
    monkeypatch.setattr(fold_kernel, "_cpu", lambda: "flags : sse2 (some other machine)\n")
    assert fold_kernel.library_path() != here
    assert os.path.dirname(fold_kernel.library_path()) == os.path.dirname(here)
