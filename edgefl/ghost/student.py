"""The GHOST student: per-conv bits (HQ), its quantizer specs, and the quantized twin of the FP teacher.

Quantizers and wrappers come from the compression core (``quant``/``qmodules``): DoReFa weights with
2^b levels and no zero (``dorefa``), DoReFa activations ``q_b(clamp(x, 0, 1))`` (``range``, clip 1).
"Activations after a layer take its bits": each conv's *input* is quantized with the bits of the conv
that produced it — on any net, the last conv to run upstream of that input in the traced graph
(``conv_inputs``; in a plain chain, the conv before it); a conv reading the model input sees the raw
(32-bit) image. An input that takes negative values (Hardswish/SiLU outputs, linear bottlenecks,
residual sums) is quantized on [-1, 1] rather than clamped at 0, which would drop its negative half.
The classifier (Linear) stays FP32. Works on any ``nn.Module`` with Conv2d layers; which layers are
paired for distillation is a function of the model (``default_feature_layers``) or named in the settings.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict

from torch import nn

from edgefl.compress.restore import compression_state
from edgefl.errors import EdgeflError
from edgefl.ghost.bits import conv_weights_from_model, search_bits


def conv_layer_names(model: nn.Module) -> list[str]:
    """Names of the Conv2d layers in definition order (the order activation bits follow)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def default_feature_layers(model: nn.Module) -> list[str]:
    """Layers whose outputs are paired teacher↔student: residual/conv blocks if any, else every conv.

    A block is a child of an ``nn.Sequential`` that itself contains a Conv2d (ResNet basic blocks);
    models without such blocks (plain CNNs) pair every Conv2d output.
    """
    blocks = [
        f"{name}.{child_name}" if name else child_name
        for name, module in model.named_modules()
        if isinstance(module, nn.Sequential)
        for child_name, child in module.named_children()
        if not isinstance(child, nn.Conv2d) and any(isinstance(m, nn.Conv2d) for m in child.modules())
    ]
    return blocks or conv_layer_names(model)


def hybrid_bits(model: nn.Module, config, skip=()) -> tuple[dict[str, int], float | None]:
    """Per-conv bit widths: the HQ search (or ``uniform_bits`` for every conv).

    Args:
        skip: conv names left out (left in float, e.g. convs a forward pass never reaches).
    Returns:
        (``{conv name: bits}`` in definition order, the tau used or None for uniform bits).
    """
    weights = {n: w for n, w in conv_weights_from_model(model, (nn.Conv2d,)).items() if n not in skip}
    if not weights:
        raise EdgeflError("the model has no Conv2d layer — GHOST quantizes convolutions; pick a conv model")
    if config.uniform_bits is not None:
        return {name: int(config.uniform_bits) for name in weights}, None
    tau, mean = config.hq_rule()
    bits, tau, _ = search_bits(
        weights,
        tau=tau,
        target_mean_bits=mean,
        bit_range=tuple(config.bit_range),
        seed=config.seed,
    )
    return bits, tau


def chain_inputs(bits: Mapping[str, int]) -> dict[str, list]:
    """``conv_inputs`` of a plain chain: each conv reads the one before it (the first, the image)."""
    names = list(bits)
    return {n: [names[i - 1] if i else None, False] for i, n in enumerate(names)}


def conv_inputs(model: nn.Module, bits: Mapping[str, int], x) -> dict[str, list]:
    """Where each quantized conv's input comes from, traced: ``{conv: [producer conv or None, signed]}``.

    The producer is the last conv to run upstream of the input (``edgefl.compress.graph``) among those
    at the input's resolution — a squeeze-excitation gate's 1×1 output only scales the features it
    multiplies; None when the input is the model's or comes from a layer without bits (a float
    Linear). ``signed``: the input took a negative value on ``x``.

    Args:
        model: the float teacher.
        bits: the planned ``{conv: bits}``.
        x: a normalised N×C×H×W batch of training images.
    """
    import torch

    from edgefl.compress.graph import trace_graph

    graph = trace_graph(model, tuple(x.shape[1:]))
    seen, hooks = {}, []

    def record(name, args):
        low, hw = seen.get(name, (0.0, None))
        seen[name] = (min(low, float(args[0].min())), hw or tuple(args[0].shape[2:]))

    for name, m in model.named_modules():
        if name in bits:
            hooks.append(m.register_forward_pre_hook(lambda _m, args, n=name: record(n, args)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    out = {}
    for name in bits:
        low, hw = seen.get(name, (0.0, None))
        producers = graph.producers.get(name) or []
        same = [p for p in producers if graph.out_hw.get(p) == hw]
        src = (same or producers or [None])[-1]
        out[name] = [src if src in bits else None, low < 0]
    return out


def ghost_layer_specs(bits: Mapping[str, int], inputs: Mapping[str, list] | None = None) -> dict[str, dict]:
    """Quantizer specs for ``qmodules.quantize_model``: DoReFa weights at the layer's bits, the input
    at its producer's bits (``conv_inputs``; default ``chain_inputs``), none for a conv reading the image.
    """
    inputs = inputs or chain_inputs(bits)
    specs = {}
    for name, b in bits.items():
        src, signed = inputs[name]
        act = None if src is None else {"kind": "range", "bits": int(bits[src]), "signed": bool(signed)}
        specs[name] = {"w": {"kind": "dorefa", "bits": int(b)}, "a": act}
    return specs


def quantized_twin(teacher: nn.Module, bits: Mapping[str, int], inputs: Mapping[str, list] | None = None):
    """GQSD student: a deep copy of the FP teacher with fake-quant wrappers (same initial weights)."""
    from edgefl.compress.qmodules import quantize_model

    student = copy.deepcopy(teacher)
    return quantize_model(student, ghost_layer_specs(bits, inputs))


def ghost_state(
    bits: Mapping[str, int], tau: float | None, settings, inputs: Mapping[str, list] | None = None, **summary
) -> dict:
    """The checkpoint ``compression`` state: the quantizer specs ``restore_model`` needs, plus a summary."""
    specs = ghost_layer_specs(bits, inputs)
    return compression_state(
        "ghost", None, specs, bits=dict(bits), tau=tau, config=asdict(settings), **summary
    )


def conv_params(model: nn.Module) -> dict[str, int]:
    """``{conv name: weight count}`` (the weights of the parameter-weighted mean bit width)."""
    return {n: m.weight.numel() for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def resolve_feature_layers(model: nn.Module, feature_layers, input_shape=None) -> list[str]:
    """The paired layer names: ``feature_layers`` (names, or a function of the model) or the default.

    With ``input_shape`` ([C, H, W]) the layers must run in a forward pass: the default drops those
    that do not (a module defined but never called), named ones are refused.
    """
    names = (
        feature_layers(model)
        if callable(feature_layers)
        else list(feature_layers)
        if feature_layers is not None
        else default_feature_layers(model)
    )
    known = dict(model.named_modules())
    missing = [n for n in names if n not in known]
    if not names or missing:
        raise EdgeflError(
            f"feature layers {missing or names} are not modules of the model — pass names from "
            "model.named_modules() (e.g. the residual blocks)"
        )
    if input_shape is not None:
        from edgefl.compress.graph import modules_run

        ran = modules_run(model, names, input_shape)
        idle = [n for n in names if n not in ran]
        if idle and feature_layers is not None:
            raise EdgeflError(f"feature layers {idle} do not run in a forward pass — name layers that do")
        names = [n for n in names if n in ran]
        if not names:
            raise EdgeflError("none of the default feature layers runs in a forward pass — name some")
    return names
