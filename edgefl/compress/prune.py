"""Physical filter removal that respects residual coupling.

A model's *layout* lists channel spaces and, for every conv, which space (and offset in it) its
output and input channels live in. Layers summed by residual adds share one space, so pruning index g
of a space removes that filter from every layer of the chain. For CIFAR ResNets with the option-A
shortcut (stride-2 subsampling + symmetric zero padding of channels) the whole residual stream is one
space of the last stage's width; stage k's channels sit at an offset in it, so the zero-pad
shortcut stays exact after pruning (it is replaced by ``ChannelPadShortcut`` with the new pad widths).

Why not torch-pruning's DependencyGraph: it treats the zero-pad (``ConstantPadNd``) as element-wise,
so it couples channel j of stage k with channel j (not j + pad) of stage k+1 and leaves the pad widths
stale. Option-B (1×1 conv) shortcuts would be fine there, but one mechanism for both is simpler.

A *plan* is ``{"layout": name, "pruned": {space: [indices]}}`` (JSON); ``apply_plan`` slices
weights (conv out/in channels, BN entries, classifier input columns) and ``mask_plan`` zeroes the same
filters in place (for the masked-vs-physical oracle test).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgefl.errors import EdgeflError


@dataclass(frozen=True)
class ConvNode:
    name: str
    bn: str | None
    out_space: str
    out_offset: int
    in_space: str | None  # None: the model input (never pruned)
    in_offset: int
    stage: int  # 0 = stem; 1.. = residual stage (for per-stage maximum bits)


@dataclass(frozen=True)
class PadNode:
    name: str  # option-A shortcut module
    space: str
    in_offset: int
    in_width: int
    out_offset: int
    out_width: int
    stride: int


@dataclass
class Layout:
    name: str
    spaces: dict[str, int]  # space -> size
    convs: list[ConvNode]
    linear: tuple[str, str, int] | None  # (name, in_space, in_offset)
    pads: list[PadNode] = field(default_factory=list)

    def chains(self) -> dict[str, list[ConvNode]]:
        """Space -> the convs whose outputs live in it (more than one = a residual chain)."""
        out: dict[str, list[ConvNode]] = {s: [] for s in self.spaces}
        for c in self.convs:
            out[c.out_space].append(c)
        return out


class ChannelPadShortcut(nn.Module):
    """Option-A shortcut after pruning: subsample by ``stride``, zero-pad ``before``/``after`` channels."""

    def __init__(self, stride: int, before: int, after: int):
        super().__init__()
        self.stride, self.before, self.after = stride, before, after

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after)) if self.before or self.after else x


def _cifar_resnet_layout(model: nn.Module) -> Layout:
    stages = [model.layer1, model.layer2, model.layer3]
    widths = [s[0].conv2.out_channels for s in stages]
    option_a = all(
        type(b.shortcut).__name__ in ("Identity", "ShortcutA", "ChannelPadShortcut")
        for s in stages
        for b in s
    )
    spaces: dict[str, int] = {}
    offsets = [0] * len(stages)
    if option_a:  # one residual space; symmetric padding puts stage k at an offset inside stage k+1
        spaces["res"] = widths[-1]
        for k in range(len(stages) - 2, -1, -1):
            offsets[k] = offsets[k + 1] + (widths[k + 1] - widths[k]) // 2
        res = ["res"] * len(stages)
    else:
        res = [f"res{k + 1}" for k in range(len(stages))]
        spaces.update({r: w for r, w in zip(res, widths)})
    convs = [ConvNode("conv1", "bn1", res[0], offsets[0], None, 0, 0)]
    pads = []
    prev = (res[0], offsets[0], widths[0])
    for k, stage in enumerate(stages):
        for i, block in enumerate(stage):
            base = f"layer{k + 1}.{i}"
            mid = f"{base}.mid"
            spaces[mid] = block.conv1.out_channels
            convs.append(ConvNode(f"{base}.conv1", f"{base}.bn1", mid, 0, prev[0], prev[1], k + 1))
            convs.append(ConvNode(f"{base}.conv2", f"{base}.bn2", res[k], offsets[k], mid, 0, k + 1))
            sc = block.shortcut
            if isinstance(sc, nn.Sequential):
                convs.append(
                    ConvNode(
                        f"{base}.shortcut.0",
                        f"{base}.shortcut.1",
                        res[k],
                        offsets[k],
                        prev[0],
                        prev[1],
                        k + 1,
                    )
                )
            elif not isinstance(sc, nn.Identity):
                pads.append(
                    PadNode(
                        f"{base}.shortcut",
                        "res",
                        prev[1],
                        prev[2],
                        offsets[k],
                        widths[k],
                        block.conv1.stride[0],
                    )
                )
            prev = (res[k], offsets[k], widths[k])
    return Layout("cifar_resnet", spaces, convs, ("classifier", prev[0], prev[1]), pads)


# model class name -> layout builder (add an entry to support pruning another architecture)
LAYOUTS = {"CifarResNet": _cifar_resnet_layout}


def model_layout(model: nn.Module) -> Layout:
    """The channel layout of an *unpruned* model (raises EdgeflError for unsupported architectures)."""
    kind = type(model).__name__
    if kind not in LAYOUTS:
        raise EdgeflError(
            f"filter pruning does not support {kind} — supported: {', '.join(sorted(LAYOUTS))}; "
            "use a uniform quantization method for this model"
        )
    return LAYOUTS[kind](model)


def kept_indices(layout: Layout, pruned: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Space -> sorted kept indices."""
    out = {}
    for space, size in layout.spaces.items():
        alive = np.ones(size, bool)
        alive[np.asarray(pruned.get(space, []), dtype=int)] = False
        out[space] = np.flatnonzero(alive)
    return out


def _local(kept: np.ndarray, offset: int, width: int) -> list[int]:
    return [int(k - offset) for k in kept if offset <= k < offset + width]


def _slice_conv(conv: nn.Conv2d, out_idx, in_idx) -> nn.Conv2d:
    new = nn.Conv2d(
        len(in_idx),
        len(out_idx),
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        1,
        conv.bias is not None,
        conv.padding_mode,
    ).to(conv.weight.device, conv.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(conv.weight[out_idx][:, in_idx])
        if conv.bias is not None:
            new.bias.copy_(conv.bias[out_idx])
    return new.train(conv.training)


def _slice_bn(bn: nn.BatchNorm2d, idx) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(idx), bn.eps, bn.momentum, bn.affine, bn.track_running_stats).to(
        bn.weight.device
    )
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new, name).copy_(getattr(bn, name)[idx])
        new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new.train(bn.training)


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _pad_counts(pad: PadNode, kept: np.ndarray) -> tuple[int, int]:
    window = kept[(kept >= pad.out_offset) & (kept < pad.out_offset + pad.out_width)]
    return int((window < pad.in_offset).sum()), int((window >= pad.in_offset + pad.in_width).sum())


def apply_plan(model: nn.Module, plan: dict) -> nn.Module:
    """Physically remove the planned filters from an unpruned float model, in place.

    Args:
        model: unpruned float model of a supported architecture.
        plan: {"layout": name, "pruned": {space: [indices]}}.
    Returns:
        the same model object, smaller.
    """
    layout = model_layout(model)
    if plan.get("layout") != layout.name:
        raise EdgeflError(
            f"pruning plan is for layout {plan.get('layout')!r}, the model is {layout.name!r} — "
            "use the checkpoint the plan was made for"
        )
    kept = kept_indices(layout, plan["pruned"])
    modules = dict(model.named_modules())
    for c in layout.convs:
        conv = modules[c.name]
        out_idx = _local(kept[c.out_space], c.out_offset, conv.out_channels)
        in_idx = (
            list(range(conv.in_channels))
            if c.in_space is None
            else _local(kept[c.in_space], c.in_offset, conv.in_channels)
        )
        _set(model, c.name, _slice_conv(conv, out_idx, in_idx))
        if c.bn:
            _set(model, c.bn, _slice_bn(modules[c.bn], out_idx))
    for p in layout.pads:
        _set(model, p.name, ChannelPadShortcut(p.stride, *_pad_counts(p, kept[p.space])))
    if layout.linear:
        name, space, offset = layout.linear
        fc = modules[name]
        idx = _local(kept[space], offset, fc.in_features)
        new = nn.Linear(len(idx), fc.out_features, fc.bias is not None).to(fc.weight.device, fc.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(fc.weight[:, idx])
            if fc.bias is not None:
                new.bias.copy_(fc.bias)
        _set(model, name, new.train(fc.training))
    return model


@torch.no_grad()
def mask_plan(model: nn.Module, plan: dict) -> nn.Module:
    """Zero the planned filters in place (conv weights, BN γ and β) without changing shapes."""
    layout = model_layout(model)
    modules = dict(model.named_modules())
    kept = kept_indices(layout, plan["pruned"])
    for c in layout.convs:
        conv = modules[c.name]
        keep = set(_local(kept[c.out_space], c.out_offset, conv.out_channels))
        drop = [i for i in range(conv.out_channels) if i not in keep]
        conv.weight[drop] = 0
        if c.bn:
            modules[c.bn].weight[drop] = 0
            modules[c.bn].bias[drop] = 0
    return model


def layer_l1_ratio(original: nn.Module, pruned: nn.Module, names) -> dict[str, float]:
    """s_l = Σ|W_pruned| / Σ|W_orig| for each named conv (PIC-PQ's bit rule input)."""
    a, b = dict(original.named_modules()), dict(pruned.named_modules())
    return {
        n: float(b[n].weight.detach().abs().sum() / a[n].weight.detach().abs().sum().clamp_min(1e-12))
        for n in names
    }


def layer_spatial(model: nn.Module, input_shape) -> dict[str, int]:
    """Conv name -> H_out·W_out·k_h·k_w for one input (constant under filter pruning)."""
    from edgefl.compress.bops import cost_report

    modules = dict(model.named_modules())
    out = {}
    for row in cost_report(model, input_shape, full_precision=True).layers:
        m = modules[row.name]
        out[row.name] = row.macs // max(1, m.weight.shape[0] * m.weight.shape[1])
    return out


def macs_from_plan(
    layout: Layout,
    spatial: dict[str, int],
    widths: dict[str, tuple[int, int]],
    alive: dict[str, np.ndarray],
    linear_out: int,
) -> int:
    """FLOPs as PIC-PQ counts them (conv MACs + FC weights) for the alive masks, without building a model.

    Args:
        widths: conv name -> (out_channels, in_channels) of the unpruned model.
        alive: space -> boolean mask of kept indices.
    """
    total = 0
    for c in layout.convs:
        out_w, in_w = widths[c.name]
        n_out = int(alive[c.out_space][c.out_offset : c.out_offset + out_w].sum())
        n_in = in_w if c.in_space is None else int(alive[c.in_space][c.in_offset : c.in_offset + in_w].sum())
        total += spatial[c.name] * n_out * n_in
    if layout.linear:
        name, space, offset = layout.linear
        total += int(alive[space][offset : offset + widths[name][1]].sum()) * linear_out
    return total


def flops_counter(model: nn.Module, input_shape, num_classes: int):
    """The layout of an unpruned float model and a function alive masks -> its FLOPs (``macs_from_plan``).

    Returns:
        (Layout, ``flops(alive)`` with ``alive`` = {space: boolean mask of kept indices}).
    """
    layout = model_layout(model)
    widths = {
        n: (m.weight.shape[0], m.weight.shape[1])
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    }
    spatial = layer_spatial(model, input_shape)

    def flops(alive: dict[str, np.ndarray]) -> int:
        return macs_from_plan(layout, spatial, widths, alive, linear_out=num_classes)

    return layout, flops


def l1_filter_scores(model: nn.Module, layout: Layout) -> dict[str, np.ndarray]:
    """L1 norm of every conv filter (output channel): the magnitude criterion and PIC-PQ's tie-break."""
    mods = dict(model.named_modules())
    return {
        c.name: mods[c.name].weight.detach().abs().flatten(1).sum(1).double().numpy() for c in layout.convs
    }
