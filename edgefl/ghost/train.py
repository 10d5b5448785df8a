"""GHOST quantization-aware training: the student learns the task and, when distilling, OST/SCM.

The loop itself is the project's ``edgefl.train.train_classifier`` (SGD Nesterov, one-cycle schedule,
shift augmentation); GHOST plugs in through its ``extra_loss`` hook. The student and the OST module
are wrapped in one ``nn.Module`` so the SCM gate parameters are in the optimizer and train (see
``edgefl.ghost.ost`` for why that is a deliberate deviation from the official code).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgefl.ghost.ost import OSTLoss


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
    """The student plus (optionally) the distiller's gates, so one optimizer trains both."""

    def __init__(self, student: nn.Module, distiller: nn.Module | None):
        super().__init__()
        self.student = student
        self.distiller = distiller

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


class GhostDistiller(nn.Module):
    """The OST/SCM loss between a student and its FP teacher, for any training loop.

    Hooks the paired layers of both models; after the student's forward pass on ``x``,
    ``distiller(x)`` runs the (frozen) teacher on the same ``x`` and returns the gated loss.
    Its parameters are the SCM gates: hand them to the optimizer next to the student's.

    Example (e.g. the STAD student, whose task loss is not a classification loss)::

        distiller = GhostDistiller(teacher, student, ["enc.1", "enc.3"], x[:8], config)
        opt = torch.optim.SGD([*student.parameters(), *distiller.parameters()], lr=0.01)
        out = student(x)
        loss = task_loss(out) + config.kd_weight * distiller(x)
        ...
        distiller.close()

    Args:
        teacher: FP model (set to eval mode, gradients off).
        student: its quantized twin (same module names).
        names: paired module names.
        sample: one input batch (sizes the SCM projections).
        config: GhostSettings (qk_dim, trainable_gates, gate_margin, gate_mode, seed).
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, names, sample, config):
        super().__init__()
        teacher.eval().requires_grad_(False)
        self.ost = build_ost(teacher, student, names, sample, config)
        self._teacher = [teacher]  # a list: not a submodule, so not in parameters() or state_dict()
        self._s_tap, self._t_tap = FeatureTap(student, names), FeatureTap(teacher, names)
        self.steps: list[dict] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self._teacher[0](x)
        loss, info = self.ost(self._s_tap.outputs(), self._t_tap.outputs())
        self.steps.append({"ost": float(info["ost"]), "open_rate": info["open_rate"].tolist()})
        return loss

    def close(self) -> None:
        """Remove the feature hooks from both models."""
        self._s_tap.remove()
        self._t_tap.remove()


def train_student(student, teacher, train, test, names, *, preprocessing, config, progress=None):
    """QAT of ``student`` (in place) with ``task_weight · CE + kd_weight · OST(student, teacher)``.

    Args:
        student: quantized twin of ``teacher``.
        teacher: FP model (frozen, eval mode).
        train, test: ArrayData.
        names: module names whose outputs are paired (same names in teacher and student).
        preprocessing: normalisation dict.
        config: GhostSettings.
        progress: an ``edgefl.progress`` object (None = silent).

    Returns:
        (per-epoch history: train loss, test accuracy, mean OST value, per-layer gate open rate;
        the trained OSTLoss module or None when not distilling).
    """
    from edgefl.data.arrays import normalize
    from edgefl.train import train_classifier

    teacher.eval().requires_grad_(False)
    sample = torch.from_numpy(normalize(train.x[: config.batch_size], preprocessing))
    distiller = GhostDistiller(teacher, student, names, sample, config) if config.distill else None
    wrapped = StudentWithGates(student, distiller)

    def extra_loss(model, x, y, logits):
        extra = (config.task_weight - 1.0) * F.cross_entropy(logits, y)
        if distiller is None or x.shape[0] < 2:  # BatchNorm1d in the SCM needs two samples
            return extra
        return extra + config.kd_weight * distiller(x)

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
        if distiller is not None:
            distiller.close()
    steps = distiller.steps if distiller is not None else []
    history = _history(metrics["history"], steps, math.ceil(len(train) / config.batch_size))
    return history, (distiller.ost if distiller is not None else None)


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
