"""STAD student: the small CNN that runs on the device (spec §1.5, the 3×3 conv student of `test.py`).

    block(x) = ReLU(BN(ConvTranspose3×3(ReLU(BN(Conv3×3(x))))))       C → hidden → C, stride 1, pad 1
    out      = Conv1×1(C → C)                                           the per-pixel Linear as a 1×1 conv
    forward(x) = [block1(x), block2(block1(x)), out(block2(block1(x)))]  aligned with the 3 teacher stages

The official student uses hidden = 100 (≈ 37k parameters at C = 10, only ≈ 1.7× fewer than the teacher);
the project default is hidden = 16 (≈ 6k parameters, ≈ 10.7× fewer). ``kernel=1`` gives the per-pixel
variant (the 1×1-conv + BN student; with hidden = 100 it is the official per-pixel MLP shape, ≈ 4.8k
parameters): its input gradient is strictly local.
"""

import torch
from torch import nn


class StadStudent(nn.Module):
    """3×3-conv student returning 3 outputs (N×C×H×W each)."""

    def __init__(self, channels: int = 10, hidden: int = 16, kernel: int = 3):
        super().__init__()
        if kernel not in (1, 3):
            raise ValueError(f"kernel must be 1 or 3, got {kernel}")
        self.channels, self.hidden, self.kernel = channels, hidden, kernel
        self.block1 = self._block(channels, hidden, kernel)
        self.block2 = self._block(channels, hidden, kernel)
        self.out = nn.Conv2d(channels, channels, kernel_size=1)

    @staticmethod
    def _block(c: int, hidden: int, k: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c, hidden, k, padding=k // 2),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.ConvTranspose2d(hidden, c, k, stride=1, padding=k // 2),
            nn.BatchNorm2d(c),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> list:
        o1 = self.block1(x)
        o2 = self.block2(o1)
        return [o1, o2, self.out(o2)]
