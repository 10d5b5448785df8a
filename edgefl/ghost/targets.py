"""GHOST steered by a target: the k-means threshold (tau) from a BOPs/size budget.

GHOST does not prune, so its cost is a function of the per-conv bits alone, and the bits are a
monotone function of the HQ threshold tau (a larger tau never adds bits). ``tau_for_budget`` takes the
*smallest* tau — the most bits, the gentlest quantization — whose cost fits the budget, trying just
above each k-means distortion value (where the bits change). The cost is counted as GHOST reports it
(``ACT_RULE = "input"``): a conv's weights at its bits, its input at the previous conv's bits (the first
conv sees the 32-bit image), the classifier at 32/32.

Impossible targets are refused before the k-means runs (``check_reachable``: every conv at the
smallest candidate width — exact, since nothing is pruned), naming how many bits per weight the size
would need when that is below one bit.

Back-off for ``max_drop`` (``back_off``): without a cost target each attempt asks for one more mean bit
(``target_mean_bits`` = the plan's mean + 1, up to the largest candidate); with one, the same bits are
trained 2x, then 3x as many epochs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from edgefl.compress.targets import Budget, LayerCost, Target, cost_at_bits, layer_costs, refuse
from edgefl.errors import EdgeflError


def input_bits(bits: Mapping[str, int], inputs: Mapping[str, list] | None = None) -> dict[str, int]:
    """Activation bits of each quantized conv: its producer's bits (``student.conv_inputs``; default: the
    previous conv in definition order); none where the input is the image or a float layer's."""
    if inputs is None:
        names = list(bits)
        inputs = {n: [names[i - 1] if i else None, False] for i, n in enumerate(names)}
    return {n: bits[src] for n, (src, _) in inputs.items() if src is not None and n in bits}


def ghost_cost(
    layers: Sequence[LayerCost], other_bits: int, bits: Mapping[str, int], inputs: Mapping | None = None
) -> tuple[float, float]:
    """(BOPs, size bytes) of the GHOST student with these per-conv bits and input producers."""
    return cost_at_bits(layers, other_bits, bits, input_bits(bits, inputs))


def check_reachable(
    teacher, input_shape, target: Target, bit_range, convs: Sequence[str], inputs: Mapping | None = None
) -> tuple[Budget, list, int]:
    """Refuse (EdgeflError) a cost target that even every quantized conv (``convs``) at the smallest
    candidate width misses.

    Returns:
        (the budget, the layer costs, the other bits) for ``tau_for_budget``.
    """
    layers, other = layer_costs(teacher, input_shape)
    ref_bops, ref_size = cost_at_bits(layers, other, {}, {})
    budget = target.budget(ref_bops, ref_size)
    lo = int(bit_range[0])
    convs = [lc for lc in layers if lc.name in set(convs)]
    best_bops, best_size = ghost_cost(layers, other, {lc.name: lo for lc in convs}, inputs)
    if best_size > budget.size_bytes:
        conv_weights = sum(lc.weights for lc in convs)
        fixed = 8 * best_size - lo * conv_weights
        need = (8 * budget.size_bytes - fixed) / max(1, conv_weights)
        if need < 1:
            raise EdgeflError(
                f"--target-size is out of reach: it leaves {max(need, 0):.2f} bits per conv weight once the "
                f"FP32 classifier, biases and BN are paid (GHOST needs at least 1) — ask for at least "
                f"{(fixed + conv_weights) / 8:.0f} bytes"
            )
    refuse(target, budget, best_bops, best_size, ref_bops, ref_size, f"every conv at {lo} bits")
    return budget, layers, other


def tau_for_budget(distortions, layers, other_bits: int, budget: Budget, bit_range, inputs=None) -> float:
    """The smallest HQ threshold whose bits fit the budget (distortions: ``bits.layer_distortion`` rows)."""
    from edgefl.ghost.bits import bits_for_layers

    import numpy as np

    values = sorted({v for d in distortions for v in d.distortion.values()})
    for value in [0.0, *values]:
        tau = float(np.nextafter(value, np.inf))
        if budget.fits(
            *ghost_cost(layers, other_bits, bits_for_layers(distortions, tau, bit_range=bit_range), inputs)
        ):
            return tau
    raise EdgeflError("no HQ threshold meets the target — lower it")  # check_reachable makes this unreachable


def resolve_bits(teacher, input_shape, settings, target: Target, skip=(), x=None):
    """(bits, tau, inputs, knobs) for a cost target: the input producers (traced on ``x``), the
    reachability check, the k-means tables, then ``tau_for_budget``. ``skip``: convs left float."""
    from torch import nn

    from edgefl.ghost.bits import bits_for_layers, conv_weights_from_model, layer_distortion
    from edgefl.ghost.student import conv_inputs

    rng = tuple(settings.bit_range)
    weights = {n: w for n, w in conv_weights_from_model(teacher, (nn.Conv2d,)).items() if n not in skip}
    inputs = conv_inputs(teacher, dict.fromkeys(weights, rng[1]), x) if x is not None else None
    budget, layers, other = check_reachable(teacher, input_shape, target, rng, list(weights), inputs)
    tables = [
        layer_distortion(name, w, bit_range=rng, seed=settings.seed + 1000 * i)
        for i, (name, w) in enumerate(weights.items())
    ]
    tau = tau_for_budget(tables, layers, other, budget, rng, inputs)
    bits = bits_for_layers(tables, tau, bit_range=rng)
    bops, size = ghost_cost(layers, other, bits, inputs)
    return bits, tau, inputs, {"tau": tau, "predicted_bops": bops, "predicted_size_bytes": size}


def back_off(settings, plan: dict, attempt: int, target: Target):
    """(settings, plan or None to plan again) of attempt ``attempt`` after ``max_drop`` was exceeded;
    None when nothing gentler is left (see the module doc)."""
    knobs = plan["knobs"]
    if target.has_cost or settings.uniform_bits is not None:  # keep the bits, train longer
        more = replace(settings, epochs=plan["epochs"] * (attempt + 1))
        return more, {**plan, "knobs": {**knobs, "epochs": more.epochs}}
    hi = settings.bit_range[1]
    if knobs["mean_bits"] >= hi:
        return None
    return replace(settings, tau=None, target_mean_bits=min(hi, knobs["mean_bits"] + 1)), None
