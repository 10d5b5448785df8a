"""Shared STAD fixtures: one tiny trained teacher/student pair (a few steps) and its exported bundle."""

import pytest


@pytest.fixture(scope="session")
def tiny_stad(tmp_path_factory):
    """A `compress stad` output directory trained for a few steps: teacher/, student/, bundle/."""
    import torch

    from edgefl.stad.config import StadSettings
    from edgefl.stad.run import compress_stad

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("stad") / "run"
    cfg = StadSettings(teacher_steps=4, student_steps=6)
    result = compress_stad(["abu-urban-2", "hydice"], out, cfg, export_profile="jetson-tx2")
    return out, result
