"""GHOST one-to-one self-teaching (OST) gated by the switch control machine (SCM).

Student layer l is pulled towards the same-position teacher layer l on normalised spatial attention
maps, for sample b only when the SCM's hard Gumbel-sigmoid gate ``alpha[b, l]`` fires (Zhang et al.,
"Guided Hybrid Quantization ... via One-to-one Self-teaching", IEEE TGRS 2023, arXiv 2301.00131). The
gate logit is the scaled dot product of a student key and a teacher query, both projected from the
channel means of the two feature maps.

Deviation from the official code (documented on purpose): there the projection layers are created
after the optimizer and never train. Here they are ordinary parameters (``trainable=True``) that the
caller hands to its optimizer, and ``gate_margin`` gives them something to learn: the gate's
straight-through gradient is ``kd · (D[b, l] − margin · mean_b D[b, l])``, so a gate opens for
samples whose mismatch is below ``margin`` times the batch's mean for that layer and closes for the
outliers — the student refuses guidance that is unusually far from what it does. With
``gate_margin=0`` the gradient is the official one (always ≥ 0: gates are only ever pushed shut,
which with trainable gates collapses them to all-off). ``trainable=False`` reproduces the official
frozen random projections.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def attention_map(feature: torch.Tensor) -> torch.Tensor:
    """Spatial attention: channel mean of the squared feature map, L2-normalised over positions.

    Args:
        feature: ``B×C×H×W`` (any number of trailing spatial dims) or ``B×C``.

    Returns:
        ``B×(H·W)`` (``B×1`` for ``B×C`` inputs).
    """
    if feature.dim() == 2:
        feature = feature[:, :, None]
    energy = feature.pow(2).mean(dim=1).flatten(1)
    return F.normalize(energy, dim=1)


def channel_descriptor(feature: torch.Tensor) -> torch.Tensor:
    """Spatial mean per channel: ``B×C``."""
    return feature.flatten(2).mean(dim=2) if feature.dim() > 2 else feature


def gumbel_sigmoid_hard(
    logits: torch.Tensor, *, tau: float = 1.0, threshold: float = 0.5, noise: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary gates with a straight-through sigmoid gradient.

    ``y_soft = sigmoid((logits + G) / tau)`` with ``G = −log(E)``, ``E ~ Exp(1)`` (noise always on in
    the official code; ``noise=False`` for deterministic evaluation). The forward value is
    ``1[y_soft > threshold]``; the backward pass is that of ``y_soft``.

    Returns:
        (hard gates in {0, 1} carrying the soft gradient, y_soft).
    """
    if noise:
        exp = torch.empty_like(logits).exponential_()
        logits = logits - exp.log()
    y_soft = torch.sigmoid(logits / tau)
    hard = (y_soft > threshold).to(y_soft.dtype)
    return hard - y_soft.detach() + y_soft, y_soft


class SwitchControlMachine(nn.Module):
    """Per-sample, per-layer gate ``alpha[b, l]`` from teacher queries and student keys.

    Args:
        teacher_channels: channels of each hooked teacher layer.
        student_channels: channels of each hooked student layer (same length).
        qk_dim: query/key dimension d.
        trainable: learn the projections (project default) or keep them at their random
            initialisation (official code).
    """

    def __init__(
        self,
        teacher_channels: Sequence[int],
        student_channels: Sequence[int],
        *,
        qk_dim: int = 128,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        if len(teacher_channels) != len(student_channels):
            raise ValueError("teacher and student must expose the same number of paired layers")
        self.qk_dim = qk_dim
        self.query = nn.ModuleList(
            nn.Sequential(nn.Linear(c, qk_dim), nn.BatchNorm1d(qk_dim)) for c in teacher_channels
        )
        self.key = nn.ModuleList(
            nn.Sequential(nn.Linear(c, qk_dim), nn.BatchNorm1d(qk_dim), nn.ReLU()) for c in student_channels
        )
        self.requires_grad_(trainable)

    def logits(
        self, teacher_desc: Sequence[torch.Tensor], student_desc: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Diagonal gate logits ``<k_l, q_l> / sqrt(d)``: ``B×L`` (off-diagonal pairs are never used)."""
        cols = [
            (k(s) * q(t)).sum(dim=1) / math.sqrt(self.qk_dim)
            for q, k, t, s in zip(self.query, self.key, teacher_desc, student_desc)
        ]
        return torch.stack(cols, dim=1)


class OSTLoss(nn.Module):
    """One-to-one self-teaching loss ``Σ_l mean_b(alpha[b, l] · mean_hw((v_S − v_T)²))``.

    Args:
        teacher_channels / student_channels: channels of the paired layers, in pairing order.
        qk_dim: SCM query/key dimension.
        trainable_gates: learn the SCM projections (see module docstring).
        gate_margin: price that makes gates open for below-average mismatch (0 = official gradient).
        gumbel_tau / threshold: Gumbel-sigmoid temperature and firing threshold.
        gate_mode: ``"scm"`` (learned gates), ``"open"`` (all gates 1: plain attention transfer) or
            ``"closed"`` (all gates 0).
    """

    GATE_MODES = ("scm", "open", "closed")

    def __init__(
        self,
        teacher_channels: Sequence[int],
        student_channels: Sequence[int],
        *,
        qk_dim: int = 128,
        trainable_gates: bool = True,
        gate_margin: float = 1.0,
        gumbel_tau: float = 1.0,
        threshold: float = 0.5,
        gate_mode: str = "scm",
    ) -> None:
        super().__init__()
        if gate_mode not in self.GATE_MODES:
            raise ValueError(f"gate_mode must be one of {self.GATE_MODES}, got {gate_mode!r}")
        self.scm = SwitchControlMachine(
            teacher_channels, student_channels, qk_dim=qk_dim, trainable=trainable_gates
        )
        self.gate_margin = gate_margin
        self.gumbel_tau = gumbel_tau
        self.threshold = threshold
        self.gate_mode = gate_mode

    def gates(self, feats_s: Sequence[torch.Tensor], feats_t: Sequence[torch.Tensor]) -> torch.Tensor:
        """Hard gates ``B×L`` (straight-through gradient in ``"scm"`` mode)."""
        batch, layers = feats_s[0].shape[0], len(feats_s)
        if self.gate_mode != "scm":
            value = 1.0 if self.gate_mode == "open" else 0.0
            return feats_s[0].new_full((batch, layers), value)
        logits = self.scm.logits(
            [channel_descriptor(t) for t in feats_t], [channel_descriptor(s) for s in feats_s]
        )
        hard, _ = gumbel_sigmoid_hard(logits, tau=self.gumbel_tau, threshold=self.threshold)
        return hard

    def forward(
        self, feats_s: Sequence[torch.Tensor], feats_t: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Gated distillation loss.

        Args:
            feats_s: student features, one tensor per paired layer (shapes may differ per layer).
            feats_t: teacher features at the same positions (no gradient needed).

        Returns:
            (loss to minimise, info with ``ost`` = the gated loss value, ``open_rate`` per layer (L,)
            and ``mismatch`` per layer (L,)).
        """
        if len(feats_s) != len(feats_t) or not feats_s:
            raise ValueError("need the same, non-zero number of student and teacher features")
        feats_t = [t.detach() for t in feats_t]
        mismatch = torch.stack(
            [(attention_map(s) - attention_map(t)).pow(2).mean(dim=1) for s, t in zip(feats_s, feats_t)],
            dim=1,
        )  # B×L
        alpha = self.gates(feats_s, feats_t)
        ost = (alpha * mismatch).mean(dim=0).sum()
        loss = ost
        if self.gate_mode == "scm" and self.gate_margin:
            # Price for opening a gate: only the gate sees it (mismatch is detached).
            price = self.gate_margin * mismatch.detach().mean(dim=0, keepdim=True)
            loss = loss - (alpha * price).mean(dim=0).sum()
        info = {
            "ost": ost.detach(),
            "open_rate": alpha.detach().mean(dim=0),
            "mismatch": mismatch.detach().mean(dim=0),
        }
        return loss, info
