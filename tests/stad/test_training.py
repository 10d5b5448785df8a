"""Teacher training restores pseudo-anomalies and distillation learns the stages (spec §5.3–5.4)."""

import dataclasses

import numpy as np
import pytest
import torch

from edgefl.data import load_hsi_scene
from edgefl.stad.config import StadConfig
from edgefl.stad.distill import distill_student
from edgefl.stad.pipeline import training_cubes
from edgefl.stad.train import blob_restoration, train_teacher


@pytest.mark.slow
def test_teacher_learns_to_restore_blobs_and_student_follows():
    torch.set_num_threads(1)
    cfg = dataclasses.replace(StadConfig(), teacher_steps=150, student_steps=150, batch_size=4)
    cubes = training_cubes([load_hsi_scene("pavia")], cfg)
    teacher, th = train_teacher(cubes, cfg)
    loss = th["teacher_loss"]
    assert np.mean(loss[-20:]) < 0.5 * np.mean(loss[:20])
    # blob pixels (spectra ×2) come out closer to the clean background than they went in
    assert th["blob_restoration"] < 1.0
    assert blob_restoration(teacher, cubes, cfg) == pytest.approx(th["blob_restoration"])
    _, sh = distill_student(teacher, cubes, cfg)
    assert np.mean(sh["student_loss"][-20:]) < 0.5 * np.mean(sh["student_loss"][:20])
