"""Baselines on the same model, data and budget as PIC-PQ.

- ``run_uniform``: uniform b-bit QAT (weights and input activations) of every conv/linear except the
  first conv (stem) and the classifier, which stay FP32 as in PIC-PQ.
- ``run_magnitude``: L1-magnitude filter pruning (Li et al.: a filter's importance is its L1 norm;
  the same global ranking, residual chains, quotas and physical removal as PIC-PQ) plus uniform b-bit
  QAT, pruned until the BOPs reach a given budget (PIC-PQ's, for a side-by-side at equal BOPs).
"""

from __future__ import annotations

import copy

import numpy as np

from edgefl.compress.pipeline import (
    CompressionResult,
    accuracy,
    layer_rows,
    quantize_for_qat,
    tensors,
    totals,
)
from edgefl.errors import EdgeflError
from edgefl.progress import NullProgress


def quantizable_layers(model) -> list[str]:
    """Conv2d/Linear layers except the first conv and ``model.classifier`` (kept FP32)."""
    from torch import nn

    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    first_conv = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    return [n for n in names if n not in (first_conv, "classifier")]


def _train(model, train, epochs, lr, batch_size, seed, preprocessing, progress):
    from edgefl.train import train_classifier

    if epochs > 0:
        train_classifier(
            model,
            train,
            None,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            preprocessing=preprocessing,
            progress=progress,
        )


def run_uniform(
    fp_model,
    train,
    test,
    preprocessing: dict,
    input_shape,
    bits: int,
    epochs: int = 3,
    lr: float = 0.01,
    batch_size: int = 128,
    seed: int = 0,
    weight_quantizer: str = "symmetric",
    progress=None,
) -> CompressionResult:
    """Uniform ``bits``-bit QAT for ``epochs`` epochs (stem and classifier FP32)."""
    from edgefl.compress.qmodules import model_quant_specs
    from edgefl.compress.restore import compression_state
    from edgefl.train import seed_everything

    seed_everything(seed)
    fp_model = copy.deepcopy(fp_model).eval()
    acc_before = accuracy(fp_model, test, preprocessing)
    model = copy.deepcopy(fp_model)
    x, _ = tensors(train, preprocessing)
    quantize_for_qat(model, {n: bits for n in quantizable_layers(model)}, x[:512], weight_quantizer)
    _train(model, train, epochs, lr, batch_size, seed, preprocessing, progress or NullProgress())
    model.eval()
    state = compression_state("uniform", None, model_quant_specs(model), bits=bits)
    return CompressionResult(
        model,
        state,
        layer_rows(fp_model, model, input_shape),
        totals(fp_model, model, input_shape, acc_before, accuracy(model, test, preprocessing)),
    )


def l1_filter_scores(model, layout) -> dict[str, np.ndarray]:
    """L1 norm of every conv filter (output channel)."""
    mods = dict(model.named_modules())
    return {
        c.name: mods[c.name].weight.detach().abs().flatten(1).sum(1).double().numpy() for c in layout.convs
    }


def bops_at_bits(model, input_shape, bits: int, quantized: set) -> int:
    """BOPs of a float (pruned) model if the ``quantized`` layers ran at ``bits``/``bits`` (others 32/32)."""
    from edgefl.compress.bops import cost_report

    return sum(
        r.macs * (bits * bits if r.name in quantized else 1024)
        for r in cost_report(model, input_shape, full_precision=True).layers
    )


def magnitude_plan_for_bops(fp_model, input_shape, target_bops: float, bits: int, safeguard: float = 0.1):
    """Bisection on the FLOPs target so that L1 pruning + uniform ``bits`` lands at or below ``target_bops``.

    Returns:
        (plan, bops) or None if even the most pruning the quotas allow stays above the budget.
    """
    from edgefl.compress.picpq import _search_space
    from edgefl.compress.picpq_criterion import global_prune_plan
    from edgefl.compress.prune import apply_plan

    layout, flops_fn = _search_space(fp_model, input_shape, fp_model.classifier.out_features)
    scores = l1_filter_scores(fp_model, layout)
    quantized = set(quantizable_layers(fp_model))

    def attempt(keep):
        plan, _ = global_prune_plan(layout, scores, flops_fn, keep, safeguard, check_every=1)
        return plan, bops_at_bits(apply_plan(copy.deepcopy(fp_model), plan), input_shape, bits, quantized)

    best = attempt(1.0)
    if best[1] <= target_bops:
        return best
    lo, hi = 0.0, 1.0  # keep fraction: lo always feasible-or-floor, hi infeasible
    floor = attempt(1e-6)
    if floor[1] > target_bops:
        return None
    best = floor
    for _ in range(14):
        mid = (lo + hi) / 2
        cand = attempt(mid)
        if cand[1] <= target_bops:
            lo, best = mid, cand
        else:
            hi = mid
    return best


def run_magnitude(
    fp_model,
    train,
    test,
    preprocessing: dict,
    input_shape,
    target_bops: float,
    bits: int,
    ft_epochs: int = 1,
    qat_epochs: int = 2,
    lr: float = 0.01,
    batch_size: int = 128,
    seed: int = 0,
    weight_quantizer: str = "symmetric",
    safeguard: float = 0.1,
    ft_lr: float = 0.05,
    progress=None,
) -> CompressionResult:
    """L1-magnitude pruning + uniform quantization at <= ``target_bops``; ``bits`` is lowered if needed."""
    from edgefl.compress.prune import apply_plan
    from edgefl.compress.qmodules import model_quant_specs
    from edgefl.compress.restore import compression_state
    from edgefl.train import seed_everything

    seed_everything(seed)
    progress = progress or NullProgress()
    fp_model = copy.deepcopy(fp_model).eval()
    acc_before = accuracy(fp_model, test, preprocessing)
    found = None
    for b in range(bits, 1, -1):
        found = magnitude_plan_for_bops(fp_model, input_shape, target_bops, b, safeguard)
        if found is not None:
            bits = b
            break
    if found is None:
        raise EdgeflError(
            f"magnitude pruning cannot reach {target_bops:.3g} BOPs even at 2 bits — raise the budget"
        )
    plan, _ = found
    model = apply_plan(copy.deepcopy(fp_model), plan)
    _train(model, train, ft_epochs, ft_lr, batch_size, seed, preprocessing, progress)
    x, _ = tensors(train, preprocessing)
    quantize_for_qat(model, {n: bits for n in quantizable_layers(model)}, x[:512], weight_quantizer)
    _train(model, train, qat_epochs, lr, batch_size, seed, preprocessing, progress)
    model.eval()
    state = compression_state("magnitude", plan, model_quant_specs(model), bits=bits)
    return CompressionResult(
        model,
        state,
        layer_rows(fp_model, model, input_shape),
        totals(fp_model, model, input_shape, acc_before, accuracy(model, test, preprocessing)),
        {"bits": bits},
    )
