"""Stage-wise distillation of the STAD teacher into the student CNN (spec §1.6).

    teacher frozen (eval, no grad); x = clean crop (no pseudo-anomalies)
    loss = Σ_k MSE(student(x)[k], teacher(x)[k])     k = 1..3, equal weights

No loss to the input, no logits, no temperature; Adam without weight decay or schedule; the EMA of the
student's weights (decay 0.9, the official value) is the result.
"""

import copy

import numpy as np
import torch

from edgefl.stad.blobs import sample_crops
from edgefl.stad.config import StadSettings
from edgefl.stad.train import ema_update


def stage_loss(student_outs: list, teacher_outs: list) -> torch.Tensor:
    return sum(torch.nn.functional.mse_loss(s, t) for s, t in zip(student_outs, teacher_outs))


def distill_student(teacher, cubes: list, cfg: StadSettings, on_step=None):
    """Train a StadStudent to match the teacher's 3 stage outputs on clean crops.

    Returns:
        (EMA student in eval mode, history dict with the per-step distillation loss).
    """
    from edgefl.models.stad_student import StadStudent

    torch.manual_seed(cfg.seed + 2)
    rng = np.random.default_rng(cfg.seed + 2)
    teacher.eval()
    student = StadStudent(cfg.channels, hidden=cfg.student_hidden, kernel=cfg.student_kernel)
    ema = copy.deepcopy(student)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.student_lr)
    losses = []
    student.train()
    for step in range(cfg.student_steps):
        x = torch.from_numpy(sample_crops(cubes, rng, cfg.batch_size, cfg.crop))
        with torch.no_grad():
            target = teacher(x)
        loss = stage_loss(student(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema_update(ema, student, cfg.student_ema)
        losses.append(float(loss.detach()))
        if on_step:
            on_step(step + 1, cfg.student_steps, losses[-1])
    ema.eval()
    return ema, {"student_loss": losses}
