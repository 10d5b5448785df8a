"""A model's layer graph as Torch-Pruning traces it: which Conv2d/Linear feeds which, in what order.

``trace_graph`` runs one forward pass of zeros under Torch-Pruning's tracer (autograd, so any
``forward`` that torch can differentiate works: no torch.fx, no zoo conventions) and keeps:

- the ``DependencyGraph`` itself (the channel couplings ``edgefl.compress.layout_graph`` prunes by);
- the Conv2d/Linear layers in execution order, how often each ran, each conv's output resolution;
- each layer's *producers*: the nearest Conv2d/Linear layers upstream of its input, through anything
  else (BN, activations, adds, concatenations, gates, pooling). No producer = it reads the model input.

``layer_stages`` turns that into PIC-PQ's stages for any net (see its doc).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from edgefl.errors import EdgeflError

LAYER_TYPES = (nn.Conv2d, nn.Linear)


@dataclass
class LayerGraph:
    """What one traced forward pass says about a model's Conv2d/Linear layers.

    Attributes:
        dg: the Torch-Pruning ``DependencyGraph`` of the traced model.
        order: Conv2d/Linear names in execution order (first call), only those that ran.
        calls: name -> how many times the layer ran in the pass.
        out_hw: conv name -> (H, W) of its output.
        producers: layer name -> nearest upstream Conv2d/Linear names (sorted by execution order;
            empty: the layer reads the model input).
    """

    dg: object
    order: list[str]
    calls: dict[str, int]
    out_hw: dict[str, tuple[int, int]]
    producers: dict[str, list[str]] = field(default_factory=dict)


def example_input(model: nn.Module, input_shape):
    """One batch-1 input of zeros of ``input_shape`` ([C, H, W]), on the model's device and dtype."""
    import torch

    param = next(model.parameters(), None)
    shape = (1, *[int(d) for d in input_shape])
    if param is None:
        return torch.zeros(shape)
    return torch.zeros(shape, dtype=param.dtype, device=param.device)


def dependency_graph(model: nn.Module, input_shape):
    """Torch-Pruning's DependencyGraph of ``model`` traced on one batch-1 input of zeros.

    The model's train/eval mode is kept (the tracer switches it to eval).

    Raises:
        EdgeflError: the model's forward pass fails on an input of that shape.
    """
    import torch
    import torch_pruning as tp

    example = example_input(model, input_shape)
    was_training = model.training
    try:
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False)
    except EdgeflError:
        raise
    except Exception as exc:  # the user's forward, or the tracer on it: one line, whatever it raised
        raise EdgeflError(
            f"tracing {type(model).__name__} on an input of shape {list(input_shape)} failed "
            f"({type(exc).__name__}: {exc}) — check the model's input shape"
        ) from None
    finally:
        model.train(was_training)


def _upstream_layers(node, layer_of) -> list:
    """The nearest Conv2d/Linear nodes upstream of ``node`` (not crossing one)."""
    found, seen, stack = [], set(), list(node.inputs)
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.module in layer_of:
            found.append(layer_of[n.module])
        else:
            stack.extend(n.inputs)
    return found


def trace_graph(model: nn.Module, input_shape) -> LayerGraph:
    """Trace ``model`` once (see the module doc).

    Args:
        model: any nn.Module taking one N×C×H×W tensor.
        input_shape: [C, H, W].
    """
    order, calls, out_hw = [], {}, {}
    layer_of = {m: n for n, m in model.named_modules() if isinstance(m, LAYER_TYPES)}

    def record(module, _inputs, output):
        name = layer_of[module]
        if name not in calls:
            order.append(name)
        calls[name] = calls.get(name, 0) + 1
        if isinstance(module, nn.Conv2d) and hasattr(output, "shape") and len(output.shape) == 4:
            out_hw.setdefault(name, (int(output.shape[2]), int(output.shape[3])))

    handles = [m.register_forward_hook(record) for m in layer_of]
    try:
        dg = dependency_graph(model, input_shape)
    finally:
        for h in handles:
            h.remove()
    rank = {n: i for i, n in enumerate(order)}
    producers = {}
    for module, node in dg.module2node.items():
        if module in layer_of:
            found = {n for n in _upstream_layers(node, layer_of) if n in rank}
            producers[layer_of[module]] = sorted(found, key=rank.__getitem__)
    return LayerGraph(dg, order, calls, out_hw, producers)


def layer_stages(graph: LayerGraph) -> dict[str, int]:
    """PIC-PQ's stage of every conv that ran, for any net.

    - stage 0, the stem: convs that read the model input (no conv or linear upstream);
    - stages 1, 2, ...: the distinct output resolutions of the other convs, largest first (a stride
      or a pooling starts a new stage, as ResNet's stages do);
    - a conv with a 1×1 output (a squeeze-excitation gate, a pooled branch) belongs to the stage of the
      layers it reads (the largest of their stages, at least 1): it works on that stage's channels.

    Returns:
        conv name -> stage, in execution order.
    """
    convs = [n for n in graph.order if n in graph.out_hw]
    stem = {n for n in convs if not graph.producers.get(n)}
    areas = sorted({h * w for n, (h, w) in graph.out_hw.items() if n not in stem and h * w > 1}, reverse=True)
    level = {a: i + 1 for i, a in enumerate(areas)}
    stages: dict[str, int] = {}
    for n in convs:
        h, w = graph.out_hw[n]
        if n in stem:
            stages[n] = 0
        elif h * w > 1:
            stages[n] = level[h * w]
        else:
            stages[n] = max([1] + [stages[p] for p in graph.producers[n] if p in stages])
    return stages


def modules_run(model: nn.Module, names, input_shape) -> set[str]:
    """Which of the modules ``names`` run in one forward pass of zeros of ``input_shape`` ([C, H, W])."""
    import torch

    modules = dict(model.named_modules())
    ran, hooks = set(), []
    for name in names:
        hooks.append(modules[name].register_forward_hook(lambda _m, _i, _o, n=name: ran.add(n)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input(model, input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return ran


# modules with their own weights that no method quantizes by design (they stay float quietly)
_FLOAT_BY_DESIGN = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.PReLU,
)


def layers_left_float(model: nn.Module, input_shape) -> dict[str, str]:
    """Layers with weights that the conv methods cannot quantize, each with the reason (one line).

    Conv2d and Linear layers are what edgefl quantizes; any other module owning a weight (Conv1d/3d,
    transposed convs, embeddings, recurrent or attention layers...) stays float, and so does a Conv2d
    or Linear that one forward pass never reaches. Norms and PReLU are float by design and not listed.

    Args:
        model: the float model.
        input_shape: [C, H, W] of one input.
    Returns:
        {module name: why it stays float}, in definition order.
    """
    ran = modules_run(model, [n for n, m in model.named_modules() if isinstance(m, LAYER_TYPES)], input_shape)
    out = {}
    for name, m in model.named_modules():
        own = [p for _, p in m.named_parameters(recurse=False)]
        if isinstance(m, LAYER_TYPES):
            if name not in ran:
                out[name] = f"{type(m).__name__} {name} does not run in a forward pass — left in float"
        elif own and not isinstance(m, _FLOAT_BY_DESIGN):
            out[name] = f"{type(m).__name__} {name} is not quantized (Conv2d and Linear are) — left in float"
    return out
