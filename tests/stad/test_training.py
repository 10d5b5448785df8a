"""Teacher training and distillation both learn (spec §5.3–5.4): losses fall well below their start."""

import dataclasses

import numpy as np
import pytest
import torch

from edgefl.data import load_hsi_scene
from edgefl.stad.config import StadSettings
from edgefl.stad.distill import distill_student
from edgefl.stad.pipeline import training_cubes
from edgefl.stad.train import blob_restoration, train_teacher


@pytest.mark.slow
def test_teacher_and_student_losses_fall():
    torch.set_num_threads(1)
    cfg = dataclasses.replace(StadSettings(), teacher_steps=150, student_steps=150, batch_size=4)
    cubes = training_cubes([load_hsi_scene("pavia")], cfg)
    teacher, th = train_teacher(cubes, cfg)
    loss = th["teacher_loss"]
    assert np.mean(loss[-20:]) < 0.5 * np.mean(loss[:20])
    # the blob check (error on ×2 blob pixels / their perturbation) is deterministic and recorded; whether it
    # falls below 1 depends on the training budget (bench/stad.py records it per run), so it is not asserted
    assert blob_restoration(teacher, cubes, cfg) == pytest.approx(th["blob_restoration"])
    assert np.isfinite(th["blob_restoration"]) and th["blob_restoration"] > 0
    _, sh = distill_student(teacher, cubes, cfg)
    assert np.mean(sh["student_loss"][-20:]) < 0.5 * np.mean(sh["student_loss"][:20])
