"""StadConfig: everything that defines a STAD model and its training (no torch import: the CLI reads it)."""

import dataclasses


@dataclasses.dataclass
class StadConfig:
    """Everything that defines a STAD model and its training; recorded in the checkpoints."""

    channels: int = 10
    band_mode: str = "uniform"
    crop: int = 16
    batch_size: int = 8
    teacher_steps: int = 300
    student_steps: int = 400
    teacher_lr: float = 1e-3
    student_lr: float = 1e-3
    teacher_ema: float = 0.99
    student_ema: float = 0.9
    teacher_ffn: int = 1000
    teacher_tile: int = 50
    teacher_norm_first: bool = True
    student_hidden: int = 16
    student_kernel: int = 3
    seed: int = 12345

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
