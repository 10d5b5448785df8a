"""STAD teacher: pixel-token Transformer encoder, as the official code builds it (spec §1.3).

The paper calls the teacher "full-connected"; the official code stacks Transformer encoder layers, and
this project follows the code: every pixel spectrum is one token (d_model = C), all pixels of the image
(or tile) form one sequence, no positional encoding; 3 stages, each one post-norm encoder layer with 2-head
self-attention, FFN width 1000, ReLU, dropout 0.1; every stage output is reshaped to C×H×W.

Deviation (``norm_first=True``, the default): the official layers are post-norm, so every stage output
is LayerNorm-ed over the C spectral features — each pixel's brightness and spectral offset are removed and
no stage can restore x (on the shipped scenes the stage MSE stalls at ≈ 0.3 on [0, 1] data, and a ReLU
student cannot match the signed normalised stages). Pre-norm layers keep the residual stream in input
units, so stages can reconstruct the clean spectra; ``norm_first=False`` gives the official layout.

Attention over all pixels costs O((H·W)²·C), so large scenes run tile by tile (`tile` pixels a side;
tiles are independent, so the input gradient of the tiled forward is exact for the tiled model).
"""

import torch
from torch import nn


class StadTeacher(nn.Module):
    """Transformer teacher returning the 3 stage outputs (each N×C×H×W)."""

    def __init__(
        self,
        channels: int = 10,
        stages: int = 3,
        heads: int = 2,
        ffn: int = 1000,
        dropout: float = 0.1,
        tile: int = 50,
        norm_first: bool = True,
    ):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.channels, self.tile = channels, tile
        self.stages = nn.ModuleList(
            nn.TransformerEncoderLayer(
                channels,
                heads,
                dim_feedforward=ffn,
                dropout=dropout,
                activation="relu",
                batch_first=True,
                norm_first=norm_first,
            )
            for _ in range(stages)
        )

    def _forward_whole(self, x: torch.Tensor) -> list:
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # N×(H·W)×C
        outs = []
        for stage in self.stages:
            tokens = stage(tokens)
            outs.append(tokens.transpose(1, 2).reshape(n, c, h, w))
        return outs

    def forward(self, x: torch.Tensor) -> list:
        h, w = x.shape[2], x.shape[3]
        t = self.tile
        if not t or (h <= t and w <= t):
            return self._forward_whole(x)
        rows = [self._forward_tiles_row(x[:, :, i : i + t], t) for i in range(0, h, t)]
        return [torch.cat([r[k] for r in rows], dim=2) for k in range(len(self.stages))]

    def _forward_tiles_row(self, strip: torch.Tensor, t: int) -> list:
        tiles = [self._forward_whole(strip[:, :, :, j : j + t]) for j in range(0, strip.shape[3], t)]
        return [torch.cat([tl[k] for tl in tiles], dim=3) for k in range(len(self.stages))]
