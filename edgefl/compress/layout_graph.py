"""The channel layout of any conv net from Torch-Pruning's dependency graph, and the replay of its plans.

Spaces are Torch-Pruning's dependency groups rooted at Conv2d output channels
(``DependencyGraph.get_all_groups``): everything a channel is coupled with — BN entries, the layers a
residual add or a gate multiplies it with, a depthwise conv that carries it, its slice of a
concatenation in the consumer's input, the head's input columns — is one group. A space is named by
the group's first conv (definition order) that holds all of its channels, and index g is that conv's
output channel g, so ``apply_graph_plan`` replays a plan on a fresh model by pruning, space by
space, the group of that conv's output channels.

Left whole (``Layout.fixed``, one line each, shown to the user):
- groups with a grouped convolution (1 < groups, not depthwise): Torch-Pruning's conv pruner slices
  its weight as if it were ungrouped;
- groups that reach the model's output directly (they are the logits);
- groups whose physical removal disagrees with the masked model (the oracle below) — whatever the
  tracer cannot see (channel shuffles, ops it takes for element-wise, norms across channels).

The oracle: a third of every group's channels is removed physically (Torch-Pruning, on a copy) and
masked (``prune.mask_channels``: filters, BN affine and every consumer's input weights zeroed, on
another copy); the two must give the same outputs on a random input. It runs once per layout; when the
whole probe disagrees, each group is probed alone and the disagreeing ones are left whole.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgefl.compress.graph import dependency_graph, layer_stages, trace_graph
from edgefl.compress.layout import LayerNode, Layout, mask_channels
from edgefl.errors import EdgeflError

LAYOUT_NAME = "graph"
PLAN_FORMAT = 1


@dataclass
class _Group:
    """One dependency group as a space: its name, size, members and why it is left whole (or None)."""

    key: str
    size: int
    members: list  # (module name, role "out" | "in" | "norm", local indices, space indices)
    fixed: str | None = None


def _is_depthwise(m: nn.Module) -> bool:
    # Torch-Pruning's own test (ops.module2type): its depthwise pruner couples input and output channels
    return isinstance(m, nn.Conv2d) and m.groups == m.out_channels and m.out_channels > 1


def _role(dg, module, handler) -> str | None:
    import torch_pruning as tp

    if isinstance(module, tp.ops._OutputOp):
        return "output"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "norm"
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return "out" if _is_depthwise(module) or dg.is_out_channel_pruning_fn(handler) else "in"
    return None


def _why_whole(items) -> str | None:
    for name, module, role, _local, _root in items:
        if role == "output":
            return "its channels reach the model's output directly"
        if isinstance(module, nn.Conv2d) and module.groups > 1 and not _is_depthwise(module):
            return f"grouped convolution {name} (groups={module.groups}) is not pruned by channel"
    return None


def _groups(model: nn.Module, dg) -> list[_Group]:
    names = {m: n for n, m in model.named_modules()}
    position = {n: i for i, n in enumerate(names.values())}
    groups = []
    for group in dg.get_all_groups(root_module_types=(nn.Conv2d,)):
        size = len(group[0].idxs)
        items = []
        for item in group:
            module = item.dep.target.module
            role = _role(dg, module, item.dep.handler)
            items.append((names.get(module), module, role, [int(i) for i in item.idxs], list(item.root_idxs)))
        holders = sorted(
            (position[n], n, dict(zip(root, local)))
            for n, m, role, local, root in items
            if role == "out" and isinstance(m, nn.Conv2d) and len(local) == m.out_channels == size
        )
        _, key, to_key = holders[0]
        members = [
            (n, role, local, [to_key[r] for r in root])
            for n, _m, role, local, root in items
            if n is not None and role in ("out", "in", "norm")
        ]
        groups.append(_Group(key, size, members, _why_whole(items)))
    return groups


def _layout(model, graph, groups: list[_Group], input_shape) -> Layout:
    """The Layout of the traced layers with the groups that are not left whole as spaces."""
    modules = dict(model.named_modules())
    stages = layer_stages(graph)
    ran = [n for n in modules if n in graph.calls]  # definition order
    out = {n: [(None, i) for i in range(modules[n].weight.shape[0])] for n in ran}
    inp = {
        n: None
        if isinstance(modules[n], nn.Conv2d) and (modules[n].groups > 1 or not graph.producers.get(n))
        else [(None, i) for i in range(modules[n].weight.shape[1])]
        for n in ran
    }
    norms: dict[str, list] = {}
    spaces = {}
    for g in groups:
        if g.fixed:
            continue
        spaces[g.key] = g.size
        for name, role, local, where in g.members:
            if role == "out" and name in out:
                target = out[name]
            elif role == "in" and inp.get(name) is not None:
                target = inp[name]
            elif role == "norm":
                target = norms.setdefault(name, [(None, i) for i in range(modules[name].num_features)])
            else:
                continue
            for i, s in zip(local, where):
                target[i] = (g.key, s)
    convs = [
        LayerNode(n, tuple(out[n]), None if inp[n] is None else tuple(inp[n]), stages.get(n, 0))
        for n in ran
        if isinstance(modules[n], nn.Conv2d)
    ]
    linears = [
        LayerNode(n, tuple(out[n]), None if inp[n] is None else tuple(inp[n]))
        for n in ran
        if isinstance(modules[n], nn.Linear)
    ]
    return Layout(
        LAYOUT_NAME,
        spaces,
        convs,
        linears,
        [(n, tuple(c)) for n, c in norms.items()],
        {g.key: g.fixed for g in groups if g.fixed},
        {"format": PLAN_FORMAT, "input_shape": [int(d) for d in input_shape]},
    )


def prune_groups(model: nn.Module, dg, pruned: dict) -> nn.Module:
    """Remove ``pruned`` ({space: indices}) from ``model`` in place through its dependency graph ``dg``.

    Raises:
        KeyError: a space that is not a conv of the model.
        ValueError: indices out of range, repeated, or all of a space's channels.
    """
    modules = dict(model.named_modules())
    for key, idxs in pruned.items():
        module = modules.get(key)
        if not isinstance(module, nn.Conv2d):
            raise KeyError(f"space {key!r} is not a Conv2d of the model")
        idxs = sorted(int(i) for i in idxs)
        if not idxs:
            continue
        if idxs[0] < 0 or idxs[-1] >= module.out_channels or len(set(idxs)) != len(idxs):
            raise ValueError(f"space {key!r}: indices must be distinct and in [0, {module.out_channels})")
        if len(idxs) >= module.out_channels:
            raise ValueError(f"space {key!r}: a plan may not remove all {module.out_channels} channels")
        pruner = dg.get_pruner_of_module(module)
        dg.get_pruning_group(module, pruner.prune_out_channels, idxs).prune(record_history=False)
    return model


def apply_graph_plan(model: nn.Module, plan: dict) -> nn.Module:
    """Replay a graph plan on a fresh unpruned model, in place (see the module doc)."""
    if plan.get("format") != PLAN_FORMAT:
        raise EdgeflError(
            f"graph pruning plan format {plan.get('format')!r} is not {PLAN_FORMAT} — re-create the "
            "compressed checkpoint with this edgefl"
        )
    was_training = model.training
    prune_groups(model, dependency_graph(model, plan["input_shape"]), plan["pruned"])
    return model.train(was_training)


def _flat_outputs(out) -> list:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flat_outputs(o)]
    return []


def _probe(groups: list[_Group], seed: int = 0) -> dict[str, list[int]]:
    """A third of each group's channels (seeded), keeping at least one channel of every member."""
    rng = np.random.default_rng(seed)
    probe = {}
    for g in groups:
        if g.size < 2:
            continue
        chosen = set(rng.permutation(g.size)[: max(1, g.size // 3)].tolist())
        for _name, role, _local, where in g.members:
            held = set(where)
            if role != "in" and held and held <= chosen:
                chosen.discard(min(held))
        if chosen:
            probe[g.key] = sorted(chosen)
    return probe


@torch.no_grad()
def _agrees(model, layout: Layout, input_shape, pruned: dict) -> bool:
    """Does removing ``pruned`` physically give what masking it gives, on a random input?"""
    x = torch.randn((2, *input_shape), generator=torch.Generator().manual_seed(0))
    masked = mask_channels(copy.deepcopy(model).eval(), layout, pruned)
    physical = copy.deepcopy(model).eval()
    try:
        with torch.enable_grad():
            prune_groups(physical, dependency_graph(physical, input_shape), pruned)
        got = _flat_outputs(physical.eval()(x))
    except Exception:  # noqa: BLE001 - a removal Torch-Pruning cannot carry out is a disagreement
        return False
    want = _flat_outputs(masked(x))
    if len(got) != len(want) or any(a.shape != b.shape for a, b in zip(got, want)):
        return False
    return all(float((a - b).abs().max()) <= 1e-4 * (1.0 + float(b.abs().max())) for a, b in zip(got, want))


def graph_layout(model: nn.Module, input_shape) -> Layout:
    """The layout of an unpruned float model from its dependency graph, checked by the oracle.

    Args:
        model: any nn.Module taking one N×C×H×W tensor (not modified).
        input_shape: [C, H, W].
    """
    input_shape = [int(d) for d in input_shape]
    graph = trace_graph(model, input_shape)
    groups = _groups(model, graph.dg)
    layout = _layout(model, graph, groups, input_shape)
    probe = _probe([g for g in groups if not g.fixed])
    if probe and not _agrees(model, layout, input_shape, probe):
        for key, idxs in probe.items():
            if not _agrees(model, layout, input_shape, {key: idxs}):
                group = next(g for g in groups if g.key == key)
                group.fixed = (
                    "removing its channels changes what the rest of the network computes (the "
                    "dependency graph and the masked model disagree) — left whole"
                )
        layout = _layout(model, graph, groups, input_shape)
    return layout
