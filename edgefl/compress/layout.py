"""What a channel layout is (``Layout``, ``LayerNode``) and the masked oracle every layout shares.

The layout builders (``layout_graph``, ``layout_resnet``) and ``prune`` (dispatch, plans, FLOPs) build on
this module; see ``edgefl.compress.prune`` for what spaces, layouts and plans are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class LayerNode:
    """One Conv2d or Linear layer of a layout.

    Attributes:
        name: module name.
        out: (space, index) of each output channel; space None = never pruned.
        inp: (space, index) of each input channel, or None when the width of the weight's input
            dimension never changes (a layer reading the model input; a depthwise or grouped conv,
            whose input channels per group stay as they are).
        stage: PIC-PQ's stage (0 = stem; see ``edgefl.compress.graph.layer_stages``).
    """

    name: str
    out: tuple
    inp: tuple | None = None
    stage: int = 0


@dataclass
class Layout:
    """Channel spaces and the layers that hold them (see the module doc).

    Attributes:
        name: the layout kind, recorded in plans ("graph", "cifar_resnet").
        spaces: space -> number of channels.
        convs: the Conv2d layers, in definition order (what PIC-PQ scores and quantizes).
        linears: the Linear layers (their FLOPs, and the channels a pruned space removes from them).
        norms: (module name, (space, index) per channel) of the BatchNorms masked with the channels.
        fixed: what is not pruned and why: space or layer name -> one line (reported to the user).
        header: plan fields besides ``layout`` and ``pruned``.
    """

    name: str
    spaces: dict[str, int]
    convs: list[LayerNode]
    linears: list[LayerNode] = field(default_factory=list)
    norms: list[tuple[str, tuple]] = field(default_factory=list)
    fixed: dict[str, str] = field(default_factory=dict)
    header: dict = field(default_factory=dict)

    def chains(self) -> dict[str, list[LayerNode]]:
        """Space -> the convs with an output channel in it (more than one = a coupled chain)."""
        out: dict[str, list[LayerNode]] = {s: [] for s in self.spaces}
        for c in self.convs:
            for space in dict.fromkeys(s for s, _ in c.out if s is not None):
                out[space].append(c)
        return out

    def plan(self, pruned: dict[str, list[int]]) -> dict:
        """The JSON plan that prunes ``pruned`` ({space: indices}) from this layout's model."""
        return {"layout": self.name, **self.header, "pruned": pruned}


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule ``name`` of ``model`` by ``new``."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def kept_indices(layout, pruned: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Space -> sorted kept indices (``layout``: a Layout or its ``spaces`` dict)."""
    spaces = getattr(layout, "spaces", layout)
    out = {}
    for space, size in spaces.items():
        alive = np.ones(size, bool)
        alive[np.asarray(pruned.get(space, []), dtype=int)] = False
        out[space] = np.flatnonzero(alive)
    return out


def _alive_mask(channels: tuple, alive_of: dict[str, np.ndarray]) -> np.ndarray:
    return np.array([s is None or bool(alive_of[s][g]) for s, g in channels], bool)


@torch.no_grad()
def mask_channels(model: nn.Module, layout: Layout, pruned: dict[str, list[int]]) -> nn.Module:
    """Zero the pruned channels in place without changing shapes: their filters (weight rows, biases),
    their BatchNorm affine entries and every consumer's input weights for them."""
    alive = {s: np.ones(n, bool) for s, n in layout.spaces.items()}
    for s, idx in pruned.items():
        alive[s][np.asarray(idx, dtype=int)] = False
    modules = dict(model.named_modules())
    for node in layout.convs + layout.linears:
        m = modules[node.name]
        drop = np.flatnonzero(~_alive_mask(node.out, alive)).tolist()
        m.weight[drop] = 0
        if m.bias is not None:
            m.bias[drop] = 0
        if node.inp is not None:
            m.weight[:, np.flatnonzero(~_alive_mask(node.inp, alive)).tolist()] = 0
    for name, channels in layout.norms:
        drop = np.flatnonzero(~_alive_mask(channels, alive)).tolist()
        modules[name].weight[drop] = 0
        modules[name].bias[drop] = 0
    return model
