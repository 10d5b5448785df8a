"""Physical filter removal for any conv net: channel layouts, pruning plans, what a plan costs.

A model's *layout* says, for every Conv2d and Linear layer, in which channel *space* (and at which index
of it) each of its output and input channels lives. Channels the network couples — summed by a
residual add, multiplied by a gate, carried through a depthwise conv, concatenated into a consumer's
input — share one space index, so pruning index g of a space removes that channel from every layer
that holds it. A channel in no space (space ``None``) is never pruned. Two builders:

- ``graph`` (every model; ``edgefl.compress.layout_graph``): the spaces are Torch-Pruning's dependency
  groups, and what the graph cannot prune exactly is left whole and named in ``Layout.fixed``;
- ``cifar_resnet`` (edgefl's CIFAR ResNets; ``edgefl.compress.layout_resnet``): the option-A zero-pad
  shortcut, which no dependency graph expresses, and the plans of earlier ResNet checkpoints.

A *plan* is JSON, ``{"layout": name, "pruned": {space: [indices]}}`` plus the layout's own fields
(``Layout.header``; the graph layout records its format and the input shape it traces with).
``apply_plan`` replays it on a fresh unpruned model (how checkpoints are restored); ``mask_plan`` zeroes
the same channels without changing any shape — the oracle the physical removal is tested against.
"""

from __future__ import annotations

import importlib

import numpy as np
from torch import nn

from edgefl.compress.layout import LayerNode, Layout, kept_indices, mask_channels, set_module
from edgefl.errors import EdgeflError

__all__ = [
    "LayerNode",
    "Layout",
    "apply_plan",
    "flops_counter",
    "kept_indices",
    "l1_filter_scores",
    "layer_l1_ratio",
    "layer_spatial",
    "macs_from_plan",
    "mask_channels",
    "mask_plan",
    "model_layout",
    "set_module",
]


# model class name -> "module:builder" of its own layout; every other model gets the graph layout
LAYOUTS = {"CifarResNet": "edgefl.compress.layout_resnet:cifar_resnet_layout"}
# plan["layout"] -> "module:replay(model, plan)"
REPLAYS = {
    "cifar_resnet": "edgefl.compress.layout_resnet:apply_resnet_plan",
    "graph": "edgefl.compress.layout_graph:apply_graph_plan",
}


def _load(ref: str):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def model_layout(model: nn.Module, input_shape=None) -> Layout:
    """The channel layout of an *unpruned* float model.

    Args:
        model: the model (not modified).
        input_shape: [C, H, W] of one input (the graph layout traces the model with it).
    Raises:
        EdgeflError: a graph layout without an input shape, or a model whose forward fails on it.
    """
    kind = type(model).__name__
    if kind in LAYOUTS:
        return _load(LAYOUTS[kind])(model)
    if input_shape is None:
        raise EdgeflError(f"pruning {kind} needs the input shape it is traced with — pass [C, H, W]")
    from edgefl.compress.layout_graph import graph_layout

    return graph_layout(model, input_shape)


def apply_plan(model: nn.Module, plan: dict) -> nn.Module:
    """Physically remove the planned channels from an unpruned float model, in place.

    Args:
        model: unpruned float model (the one the plan was made for, freshly built).
        plan: a plan (see the module doc).
    Returns:
        the same model object, smaller.
    Raises:
        EdgeflError: a layout this edgefl does not know, or a plan for another architecture.
    """
    kind = plan.get("layout")
    if kind not in REPLAYS:
        raise EdgeflError(
            f"pruning plan layout {kind!r} is unknown — known: {', '.join(sorted(REPLAYS))}; "
            "re-create the compressed checkpoint with this edgefl"
        )
    return _load(REPLAYS[kind])(model, plan)


def mask_plan(model: nn.Module, plan: dict) -> nn.Module:
    """Zero the planned channels in place (``mask_channels`` on the model's layout)."""
    return mask_channels(model, model_layout(model, plan.get("input_shape")), plan["pruned"])


def layer_l1_ratio(original: nn.Module, pruned: nn.Module, names) -> dict[str, float]:
    """s_l = Σ|W_pruned| / Σ|W_orig| for each named conv (PIC-PQ's bit rule input)."""
    a, b = dict(original.named_modules()), dict(pruned.named_modules())
    return {
        n: float(b[n].weight.detach().abs().sum() / a[n].weight.detach().abs().sum().clamp_min(1e-12))
        for n in names
    }


def layer_spatial(model: nn.Module, input_shape) -> dict[str, int]:
    """Layer name -> H_out·W_out·k_h·k_w (1 for a Linear) for one input (constant under pruning)."""
    from edgefl.compress.bops import cost_report

    modules = dict(model.named_modules())
    out = {}
    for row in cost_report(model, input_shape, full_precision=True).layers:
        m = modules[row.name]
        out[row.name] = row.macs // max(1, m.weight.shape[0] * m.weight.shape[1])
    return out


def _segments(channels: tuple | None):
    """(count of never-pruned channels, [(space, index array)]) of a layer's channel list."""
    if channels is None:
        return 0, []
    fixed, by_space = 0, {}
    for s, g in channels:
        if s is None:
            fixed += 1
        else:
            by_space.setdefault(s, []).append(g)
    return fixed, [(s, np.asarray(g, dtype=int)) for s, g in by_space.items()]


def _count(segments, alive: dict[str, np.ndarray]) -> int:
    fixed, parts = segments
    return fixed + sum(int(alive[s][g].sum()) for s, g in parts)


def macs_from_plan(layout: Layout, spatial: dict[str, int], widths: dict[str, tuple[int, int]], alive) -> int:
    """FLOPs as PIC-PQ counts them (conv and linear MACs) for the alive masks, without building a model.

    Args:
        spatial: layer name -> H_out·W_out·k_h·k_w (``layer_spatial``).
        widths: layer name -> (weight.shape[0], weight.shape[1]) of the unpruned model.
        alive: space -> boolean mask of kept indices.
    """
    return _flops_function(layout, spatial, widths)(alive)


def _flops_function(layout: Layout, spatial, widths):
    rows = [
        (spatial[n.name], _segments(n.out), _segments(n.inp), widths[n.name][1] if n.inp is None else None)
        for n in layout.convs + layout.linears
    ]

    def flops(alive: dict[str, np.ndarray]) -> int:
        total = 0
        for area, out, inp, in_width in rows:
            total += area * _count(out, alive) * (in_width if in_width is not None else _count(inp, alive))
        return total

    return flops


def flops_counter(model: nn.Module, input_shape):
    """The layout of an unpruned float model and a function alive masks -> its FLOPs (``macs_from_plan``).

    Returns:
        (Layout, ``flops(alive)`` with ``alive`` = {space: boolean mask of kept indices}).
    """
    layout = model_layout(model, input_shape)
    widths = {
        n: (m.weight.shape[0], m.weight.shape[1])
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    }
    return layout, _flops_function(layout, layer_spatial(model, input_shape), widths)


def l1_filter_scores(model: nn.Module, layout: Layout) -> dict[str, np.ndarray]:
    """L1 norm of every conv filter (output channel): the magnitude criterion and PIC-PQ's tie-break."""
    mods = dict(model.named_modules())
    return {
        c.name: mods[c.name].weight.detach().abs().flatten(1).sum(1).double().numpy() for c in layout.convs
    }
