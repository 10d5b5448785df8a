"""Forward-only STAD score graph for the device: the exact input gradient, written out as convolutions.

The STAD score is |∂L/∂x| with L = mean(w · Σ_k (o_k − x)²) (spec §1.8); inference engines (ONNX
Runtime, TensorRT) run forward graphs only. For the 3×3-conv student the gradient has a closed form —
the adjoint of a convolution is a transposed convolution with the same kernel, ReLU's derivative is the
mask a > 0, and BatchNorm in eval mode is an affine map folded into the kernels — so this module computes
it in a single forward pass (option (a) of the spec's edge note; not the reconstruction-error
approximation (c)). It takes the band-selected raw cube and does everything on the graph: global
min-max normalisation, the STF (``stf_weights_torch``), the student forward, the hand-written backward,
and the max over bands. With ``score="recon"`` it returns the weighted reconstruction error instead
(the project default, see config.StadSettings). One input ``cube`` (1×C×H×W, H and W dynamic), one
output ``score`` (1×H×W).
``tests/stad/test_scoregraph.py`` checks it against torch autograd (max relative difference ~1e-6).
"""

import torch
import torch.nn.functional as F
from torch import nn

from edgefl.stad.stf import stf_weights_torch
from edgefl.models.stad_student import StadStudent


SCORES = ("gradient", "recon")


def _bn_scale_shift(bn: nn.BatchNorm2d):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _fold_block(block: nn.Sequential):
    """(conv, bn, relu, convT, bn, relu) → two plain 3×3 conv kernels + biases (pad 1)."""
    conv, bn1, _, convt, bn2, _ = block
    s1, t1 = _bn_scale_shift(bn1)
    k1 = conv.weight * s1.reshape(-1, 1, 1, 1)
    c1 = conv.bias * s1 + t1
    # stride-1 ConvTranspose(pad 1) == Conv(pad 1) with in/out swapped and the kernel flipped
    s2, t2 = _bn_scale_shift(bn2)
    k2 = convt.weight.transpose(0, 1).flip(2, 3) * s2.reshape(-1, 1, 1, 1)
    c2 = convt.bias * s2 + t2
    return (k1, c1), (k2, c2)


def min_max_normalize_torch(cube: torch.Tensor) -> torch.Tensor:
    lo = cube.amin(dim=(1, 2, 3), keepdim=True)
    hi = cube.amax(dim=(1, 2, 3), keepdim=True)
    return (cube - lo) / (hi - lo + 1e-12)


class StudentScoreGraph(nn.Module):
    """cube (N×C×H×W, raw selected bands) → STAD anomaly score (N×H×W), forward ops only.

    Args:
        student: a trained StadStudent (its eval-mode BatchNorm statistics are folded in).
        use_stf: False for the w = 1 ablation.
        score: "gradient" (the exact input-gradient score) or "recon" (the weighted reconstruction error
            max_c w·Σ_k (o_k − x)², forward ops only by definition).
    """

    def __init__(self, student: StadStudent, use_stf: bool = True, score: str = "gradient"):
        super().__init__()
        student = student.eval()
        kernels = []
        with torch.no_grad():
            for block in (student.block1, student.block2):
                kernels.extend(_fold_block(block))
            kernels.append((student.out.weight.clone(), student.out.bias.clone()))
        for i, (k, c) in enumerate(kernels):
            self.register_buffer(f"k{i}", k.detach().clone())
            self.register_buffer(f"c{i}", c.detach().clone())
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.use_stf, self.score = use_stf, score

    def _kc(self, i: int):
        return getattr(self, f"k{i}"), getattr(self, f"c{i}")

    def forward(self, cube: torch.Tensor) -> torch.Tensor:
        x = min_max_normalize_torch(cube)
        w = stf_weights_torch(x) if self.use_stf else torch.ones_like(x[:, :1])
        acts, h = [], x
        outs = []
        for i in range(4):  # two blocks × (conv → ReLU → conv → ReLU)
            k, c = self._kc(i)
            a = F.conv2d(h, k, c, padding=k.shape[-1] // 2)
            acts.append(a)
            h = torch.relu(a)
            if i % 2 == 1:
                outs.append(h)
        k5, c5 = self._kc(4)
        outs.append(F.conv2d(h, k5, c5))
        if self.score == "recon":  # the weighted reconstruction error, max over bands
            return (w * sum((o - x) ** 2 for o in outs)).amax(dim=1)
        # dL/do_k = 2·w·(o_k − x)/numel(x) for L = mean(w·Σ_k (o_k − x)²)
        numel = torch.ones_like(x[:1]).sum()
        v = [2.0 * w * (o - x) / numel for o in outs]
        g = v[1] + F.conv_transpose2d(v[2], k5)
        for i in (3, 2, 1, 0):
            k = self._kc(i)[0]
            g = F.conv_transpose2d(g * (acts[i] > 0).to(g.dtype), k, padding=k.shape[-1] // 2)
            if i == 2:
                g = g + v[0]
        g = g - (v[0] + v[1] + v[2])
        return g.abs().amax(dim=1)
