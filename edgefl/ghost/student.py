"""The GHOST student: per-conv bits (HQ), its quantizer specs, and the quantized twin of the FP teacher.

Quantizers and wrappers come from the compression core (``quant``/``qmodules``): DoReFa weights with
2^b levels and no zero (``dorefa``), DoReFa activations ``q_b(clamp(x, 0, 1))`` (``range``, clip 1).
Each conv's *input* is quantized with the bits of the conv before it in definition order
("activations after a layer take its bits"); the first conv sees the raw (32-bit) image. The
classifier (Linear) stays FP32. Works on any ``nn.Module`` with Conv2d layers; which layers are paired
for distillation is a function of the model (``default_feature_layers``) or named in the settings.
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


def hybrid_bits(model: nn.Module, config) -> tuple[dict[str, int], float | None]:
    """Per-conv bit widths: the HQ search (or ``uniform_bits`` for every conv).

    Returns:
        (``{conv name: bits}`` in definition order, the tau used or None for uniform bits).
    """
    weights = conv_weights_from_model(model, (nn.Conv2d,))
    if not weights:
        raise EdgeflError("the model has no Conv2d layer — GHOST quantizes convolutions; pick a conv model")
    if config.uniform_bits is not None:
        return {name: int(config.uniform_bits) for name in weights}, None
    bits, tau, _ = search_bits(
        weights,
        tau=config.tau,
        target_mean_bits=config.target_mean_bits,
        bit_range=tuple(config.bit_range),
        seed=config.seed,
    )
    return bits, tau


def ghost_layer_specs(bits: Mapping[str, int]) -> dict[str, dict]:
    """Quantizer specs for ``qmodules.quantize_model``: DoReFa weights at the layer's bits, input
    activations at the bits of the previous conv (none for the first conv, which sees the image)."""
    specs, previous = {}, None
    for name, b in bits.items():
        act = None if previous is None else {"kind": "range", "bits": int(previous), "signed": False}
        specs[name] = {"w": {"kind": "dorefa", "bits": int(b)}, "a": act}
        previous = b
    return specs


def quantized_twin(teacher: nn.Module, bits: Mapping[str, int]) -> nn.Module:
    """GQSD student: a deep copy of the FP teacher with fake-quant wrappers (same initial weights)."""
    from edgefl.compress.qmodules import quantize_model

    student = copy.deepcopy(teacher)
    return quantize_model(student, ghost_layer_specs(bits))


def ghost_state(bits: Mapping[str, int], tau: float | None, settings, **summary) -> dict:
    """The checkpoint ``compression`` state: the quantizer specs ``restore_model`` needs, plus a summary."""
    return compression_state(
        "ghost", None, ghost_layer_specs(bits), bits=dict(bits), tau=tau, config=asdict(settings), **summary
    )


def conv_params(model: nn.Module) -> dict[str, int]:
    """``{conv name: weight count}`` (the weights of the parameter-weighted mean bit width)."""
    return {n: m.weight.numel() for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def resolve_feature_layers(model: nn.Module, feature_layers) -> list[str]:
    """The paired layer names: ``feature_layers`` (names, or a function of the model) or the default."""
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
    return names
