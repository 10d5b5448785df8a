"""The forward-only device score against torch autograd, and its ONNX export under onnxruntime."""

import numpy as np
import pytest
import torch

from edgefl.stad.detect import gradient_score, graph_score, recon_score
from edgefl.stad.export import onnx_from_student, onnx_score
from edgefl.stad.scoregraph import StudentScoreGraph
from edgefl.models.stad_student import StadStudent


def _student(seed=0, hidden=8, kernel=3):
    torch.manual_seed(seed)
    s = StadStudent(6, hidden=hidden, kernel=kernel)
    for m in s.modules():  # non-trivial eval-mode BatchNorm, so folding is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return s.eval()


def _cube(h=17, w=13, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((6, h, w)).astype(np.float32) * 0.2 + 0.4
    x[:, 5, 6] += 0.5  # a small target
    return (x - x.min()) / (x.max() - x.min())


@pytest.mark.parametrize("use_stf, kernel", [(True, 3), (False, 3), (True, 1)])
def test_graph_equals_autograd(use_stf, kernel):
    s, x = _student(kernel=kernel), _cube()
    ref = gradient_score(s, x, use_stf)
    got = graph_score(s, x, use_stf)
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
    assert np.abs(ref).max() > 0


def test_graph_normalises_raw_input_itself():
    s, x = _student(1), _cube()
    raw = 1000.0 * x + 50.0  # raw sensor units: the graph's min-max makes it the same input
    xn = (raw - raw.min()) / (raw.max() - raw.min())
    ref = gradient_score(s, xn)
    got = StudentScoreGraph(s)(torch.from_numpy(raw)[None])[0].detach().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-6 * np.abs(ref).max())


def test_recon_graph_equals_torch_recon():
    s, x = _student(5), _cube()
    ref = recon_score(s, x)
    got = graph_score(s, x, score="recon")
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


def test_recon_score_differs_from_gradient():
    s, x = _student(2), _cube()
    assert not np.allclose(recon_score(s, x), gradient_score(s, x))


def test_onnx_graph_runs_with_dynamic_shape_and_matches_torch(tmp_path):
    import onnx

    s = _student(3)
    path = tmp_path / "m.onnx"
    onnx.save(onnx_from_student(s, 6, opset=13, score="gradient"), str(path))
    onnx.checker.check_model(str(path), full_check=True)
    for h, w in ((17, 13), (31, 40)):  # exported at 24×20
        x = _cube(h, w, seed=h)
        ref = gradient_score(s, x)
        got = onnx_score(path, x)
        assert got.shape == (h, w)
        assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


def test_per_pixel_student_score_is_local():
    """With 1×1 kernels a pixel's score depends on that pixel only (given the STF weights)."""
    s, x = _student(4, kernel=1), _cube()
    ref = gradient_score(s, x, use_stf=False)
    y = x.copy()
    y[:, 0, 0] += 0.1
    moved = gradient_score(s, y, use_stf=False)
    changed = np.argwhere(np.abs(moved - ref) > 1e-9)
    assert changed.tolist() == [[0, 0]]
