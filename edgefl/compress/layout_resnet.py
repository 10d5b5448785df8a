"""The channel layout of edgefl's CIFAR ResNets (``edgefl.models.resnet``) and the replay of their plans.

The one per-architecture layout left: a dependency graph cannot express the option-A shortcut.
That shortcut subsamples and zero-pads the channels symmetrically, so channel j of stage k is channel
j + pad of stage k+1; Torch-Pruning treats the pad (``ConstantPadNd``) as element-wise, couples j with
j and leaves the pad widths stale. Here the whole residual stream is one space of the last stage's
width and stage k's channels sit at an offset in it, so the shortcut stays exact after pruning (it
becomes ``ChannelPadShortcut`` with the new pad widths). Option-B (1×1 conv) shortcuts use the same
rules, and every ResNet checkpoint written before the graph layout existed replays through this
module unchanged (plans ``{"layout": "cifar_resnet", "pruned": {space: [indices]}}``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgefl.compress.layout import LayerNode, Layout, kept_indices, set_module
from edgefl.errors import EdgeflError

LAYOUT_NAME = "cifar_resnet"


@dataclass(frozen=True)
class _Slot:
    """A conv, its BN, the space and offset of its output and input channels, its stage."""

    name: str
    bn: str | None
    out_space: str
    out_offset: int
    in_space: str | None  # None: the model input (never pruned)
    in_offset: int
    stage: int  # 0 = stem; 1.. = residual stage


@dataclass(frozen=True)
class _Pad:
    name: str  # option-A shortcut module
    space: str
    in_offset: int
    in_width: int
    out_offset: int
    out_width: int
    stride: int


class ChannelPadShortcut(nn.Module):
    """Option-A shortcut after pruning: subsample by ``stride``, zero-pad ``before``/``after`` channels."""

    def __init__(self, stride: int, before: int, after: int):
        super().__init__()
        self.stride, self.before, self.after = stride, before, after

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after)) if self.before or self.after else x


def _slots(model: nn.Module):
    """(spaces, conv slots, pad shortcuts, (classifier, in space, in offset)) of an unpruned CIFAR ResNet."""
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
    slots = [_Slot("conv1", "bn1", res[0], offsets[0], None, 0, 0)]
    pads = []
    prev = (res[0], offsets[0], widths[0])
    for k, stage in enumerate(stages):
        for i, block in enumerate(stage):
            base = f"layer{k + 1}.{i}"
            mid = f"{base}.mid"
            spaces[mid] = block.conv1.out_channels
            slots.append(_Slot(f"{base}.conv1", f"{base}.bn1", mid, 0, prev[0], prev[1], k + 1))
            slots.append(_Slot(f"{base}.conv2", f"{base}.bn2", res[k], offsets[k], mid, 0, k + 1))
            sc = block.shortcut
            if isinstance(sc, nn.Sequential):
                slots.append(
                    _Slot(
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
                    _Pad(
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
    return spaces, slots, pads, ("classifier", prev[0], prev[1])


def _channels(space: str | None, offset: int, width: int) -> tuple:
    return tuple((space, offset + i) if space else (None, i) for i in range(width))


def cifar_resnet_layout(model: nn.Module) -> Layout:
    """The layout of an unpruned CIFAR ResNet (one residual space for option A; see the module doc)."""
    spaces, slots, _pads, (fc_name, fc_space, fc_offset) = _slots(model)
    modules = dict(model.named_modules())
    convs = []
    for s in slots:
        conv = modules[s.name]
        out = _channels(s.out_space, s.out_offset, conv.out_channels)
        inp = None if s.in_space is None else _channels(s.in_space, s.in_offset, conv.in_channels)
        convs.append(LayerNode(s.name, out, inp, s.stage))
    fc = modules[fc_name]
    linears = [
        LayerNode(
            fc_name, _channels(None, 0, fc.out_features), _channels(fc_space, fc_offset, fc.in_features)
        )
    ]
    norms = [(s.bn, convs[i].out) for i, s in enumerate(slots) if s.bn]
    return Layout(LAYOUT_NAME, spaces, convs, linears, norms)


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


def _pad_counts(pad: _Pad, kept: np.ndarray) -> tuple[int, int]:
    window = kept[(kept >= pad.out_offset) & (kept < pad.out_offset + pad.out_width)]
    return int((window < pad.in_offset).sum()), int((window >= pad.in_offset + pad.in_width).sum())


def apply_resnet_plan(model: nn.Module, plan: dict) -> nn.Module:
    """Physically remove the planned filters from an unpruned CIFAR ResNet, in place (slicing weights:
    conv out/in channels, BN entries, classifier input columns; new pad widths for option A)."""
    if type(model).__name__ != "CifarResNet":
        raise EdgeflError(
            f"pruning plan is for layout {LAYOUT_NAME!r}, the model is {type(model).__name__} — "
            "use the checkpoint the plan was made for"
        )
    spaces, slots, pads, (fc_name, fc_space, fc_offset) = _slots(model)
    kept = kept_indices(spaces, plan["pruned"])
    modules = dict(model.named_modules())
    for c in slots:
        conv = modules[c.name]
        out_idx = _local(kept[c.out_space], c.out_offset, conv.out_channels)
        in_idx = (
            list(range(conv.in_channels))
            if c.in_space is None
            else _local(kept[c.in_space], c.in_offset, conv.in_channels)
        )
        set_module(model, c.name, _slice_conv(conv, out_idx, in_idx))
        if c.bn:
            set_module(model, c.bn, _slice_bn(modules[c.bn], out_idx))
    for p in pads:
        set_module(model, p.name, ChannelPadShortcut(p.stride, *_pad_counts(p, kept[p.space])))
    fc = modules[fc_name]
    idx = _local(kept[fc_space], fc_offset, fc.in_features)
    new = nn.Linear(len(idx), fc.out_features, fc.bias is not None).to(fc.weight.device, fc.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(fc.weight[:, idx])
        if fc.bias is not None:
            new.bias.copy_(fc.bias)
    set_module(model, fc_name, new.train(fc.training))
    return model
