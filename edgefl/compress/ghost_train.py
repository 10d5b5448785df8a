"""GHOST quantization-aware training: the student learns the task and, when distilling, OST/SCM.

The loop itself is the project's ``edgefl.train.train_classifier`` (SGD Nesterov, one-cycle schedule,
shift augmentation); GHOST plugs in through its ``extra_loss`` hook. The student and the OST module
are wrapped in one ``nn.Module`` so the SCM gate parameters are in the optimizer and train (see
``ghost_ost`` for why that is a deliberate deviation from the official code).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgefl.compress.ghost_ost import OSTLoss


class FeatureTap:
    """Forward hooks that keep the latest output of each named module, in the given order."""

    def __init__(self, model: nn.Module, names: Sequence[str]):
        modules = dict(model.named_modules())
        self.names = list(names)
        self._out: dict[str, torch.Tensor] = {}
        self._hooks = [
            modules[n].register_forward_hook(lambda mod, inp, out, n=n: self._out.__setitem__(n, out))
            for n in self.names
        ]

    def outputs(self) -> list[torch.Tensor]:
        return [self._out[n] for n in self.names]

    def clear(self) -> None:
        self._out.clear()

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self.clear()


class StudentWithGates(nn.Module):
    """The student plus (optionally) the OST module, so one optimizer trains both."""

    def __init__(self, student: nn.Module, ost: OSTLoss | None):
        super().__init__()
        self.student = student
        self.ost = ost

    def forward(self, x):
        return self.student(x)


def feature_channels(model: nn.Module, names: Sequence[str], sample: torch.Tensor) -> list[int]:
    """Channel count of each named module's output for one sample batch (eval mode, no grad)."""
    tap = FeatureTap(model, names)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(sample)
        return [int(t.shape[1]) for t in tap.outputs()]
    finally:
        tap.remove()
        model.train(was_training)


def build_ost(teacher: nn.Module, student: nn.Module, names, sample, config) -> OSTLoss:
    """OST/SCM module sized from the paired layers' channel counts (seeded initialisation)."""
    t_ch = feature_channels(teacher, names, sample)
    s_ch = feature_channels(student, names, sample)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        return OSTLoss(
            t_ch,
            s_ch,
            qk_dim=config.qk_dim,
            trainable_gates=config.trainable_gates,
            gate_margin=config.gate_margin,
            gate_mode=config.gate_mode,
        )


def train_student(
    student, teacher, train, test, names, *, preprocessing, config, progress=None
) -> list[dict]:
    """QAT of ``student`` (in place) with ``task_weight · CE + kd_weight · OST(student, teacher)``.

    Args:
        student: quantized twin of ``teacher``.
        teacher: FP model (frozen, eval mode).
        train, test: ArrayData.
        names: module names whose outputs are paired (same names in teacher and student).
        preprocessing: normalisation dict.
        config: GhostConfig.
        progress: an ``edgefl.progress`` object (None = silent).

    Returns:
        (per-epoch history: train loss, test accuracy, mean OST value, per-layer gate open rate;
        the trained OSTLoss module or None when not distilling).
    """
    from edgefl.data.arrays import normalize
    from edgefl.train import train_classifier

    teacher.eval().requires_grad_(False)
    sample = torch.from_numpy(normalize(train.x[: config.batch_size], preprocessing))
    ost = build_ost(teacher, student, names, sample, config) if config.distill else None
    wrapped = StudentWithGates(student, ost)
    s_tap, t_tap = FeatureTap(student, names), FeatureTap(teacher, names)
    steps: list[dict] = []

    def extra_loss(model, x, y, logits):
        extra = (config.task_weight - 1.0) * F.cross_entropy(logits, y)
        if ost is None or x.shape[0] < 2:  # BatchNorm1d in the SCM needs two samples
            return extra
        with torch.no_grad():
            teacher(x)
        loss, info = ost(s_tap.outputs(), t_tap.outputs())
        steps.append({"ost": float(info["ost"]), "open_rate": info["open_rate"].tolist()})
        return extra + config.kd_weight * loss

    try:
        metrics = train_classifier(
            wrapped,
            train,
            test,
            epochs=config.epochs,
            lr=config.lr,
            batch_size=config.batch_size,
            weight_decay=config.weight_decay,
            seed=config.seed,
            preprocessing=preprocessing,
            progress=progress,
            extra_loss=extra_loss,
        )
    finally:
        s_tap.remove()
        t_tap.remove()
    return _history(metrics["history"], steps, math.ceil(len(train) / config.batch_size)), ost


def _history(rows: list[dict], steps: list[dict], per_epoch: int) -> list[dict]:
    """Attach the mean OST value and per-layer gate open rate of each epoch to the loop's history."""
    out = []
    for i, row in enumerate(rows):
        chunk = steps[i * per_epoch : (i + 1) * per_epoch]
        row = dict(row)
        if chunk:
            layers = len(chunk[0]["open_rate"])
            row["ost"] = sum(s["ost"] for s in chunk) / len(chunk)
            row["gate_open_rate"] = [
                sum(s["open_rate"][j] for s in chunk) / len(chunk) for j in range(layers)
            ]
        out.append(row)
    return out
