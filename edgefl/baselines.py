"""Baselines on the same model, data and budget as PIC-PQ (two registry methods).

- ``uniform``: uniform b-bit QAT (weights and input activations) of every conv/linear except the
  first conv (stem) and the classifier, which stay FP32 as in PIC-PQ.
- ``magnitude``: L1-magnitude filter pruning (Li et al.: a filter's importance is its L1 norm;
  the same global ranking, residual chains, quotas and physical removal as PIC-PQ, from the core's
  ``edgefl.compress.prune_plan``) plus uniform b-bit QAT, pruned until the BOPs reach a given budget
  (PIC-PQ's, for a side-by-side at equal BOPs); ``bits`` is lowered when the budget needs it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from edgefl.compress.method import ClassifierData, CompressionResult, Method
from edgefl.errors import EdgeflError
from edgefl.progress import NullProgress

ACT_RULE = "own"


@dataclass(frozen=True)
class UniformSettings:
    """Uniform ``bits``-bit QAT for ``epochs`` epochs (stem and classifier FP32)."""

    bits: int = 4
    epochs: int = 3
    lr: float = 0.01
    batch_size: int = 128
    weight_quantizer: str = "symmetric"
    seed: int = 0

    def check(self) -> UniformSettings:
        if not 1 <= self.bits <= 16:
            raise EdgeflError(f"uniform bits {self.bits} — use 1..16 (e.g. 8 or 4)")
        if self.epochs < 0 or self.lr <= 0 or self.batch_size < 1:
            raise EdgeflError("uniform QAT needs epochs >= 0, lr > 0 and batch size >= 1")
        return self


@dataclass(frozen=True)
class MagnitudeSettings:
    """L1-magnitude pruning + uniform ``bits`` at <= ``target_bops`` (e.g. PIC-PQ's BOPs)."""

    target_bops: float | None = None
    bits: int = 4
    ft_epochs: int = 1
    qat_epochs: int = 2
    lr: float = 0.01
    batch_size: int = 128
    weight_quantizer: str = "symmetric"
    safeguard: float = 0.1
    ft_lr: float = 0.05
    seed: int = 0

    def check(self) -> MagnitudeSettings:
        if self.target_bops is None or self.target_bops <= 0:
            raise EdgeflError("magnitude pruning needs a BOPs budget — pass target_bops (e.g. PIC-PQ's BOPs)")
        if not 2 <= self.bits <= 16:
            raise EdgeflError(f"magnitude bits {self.bits} — use 2..16")
        if not 0 <= self.safeguard < 1:
            raise EdgeflError(f"safeguard {self.safeguard} — use a value in [0, 1)")
        return self


def quantizable_layers(model) -> list[str]:
    """Conv2d/Linear layers except the first conv and the classifier head (kept FP32; see
    ``edgefl.models.head.find_head``)."""
    from torch import nn

    from edgefl.models.head import find_head

    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    first_conv = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    head = find_head(model)[0] if any(isinstance(m, nn.Linear) for m in model.modules()) else None
    return [n for n in names if n not in (first_conv, head)]


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


def plan_uniform(fp_model, data: ClassifierData, settings: UniformSettings, progress=None) -> dict:
    """Every quantizable layer at ``settings.bits``; nothing pruned."""
    return {"prune": None, "bits": {n: settings.bits for n in quantizable_layers(fp_model)}}


def plan_magnitude(fp_model, data: ClassifierData, settings: MagnitudeSettings, progress=None) -> dict:
    """The L1 pruning plan at the highest bit width (<= ``settings.bits``) that meets the BOPs budget."""
    for b in range(settings.bits, 1, -1):
        found = magnitude_plan_for_bops(fp_model, data.shape, settings.target_bops, b, settings.safeguard)
        if found is not None:
            return {"prune": found[0], "bits": {n: b for n in quantizable_layers(fp_model)}, "bits_used": b}
    raise EdgeflError(
        f"magnitude pruning cannot reach {settings.target_bops:.3g} BOPs even at 2 bits — raise the budget"
    )


def apply_uniform(fp_model, data: ClassifierData, plan: dict, settings: UniformSettings, progress=None):
    """Quantize at the planned bits and run ``settings.epochs`` of QAT."""
    return _compress(
        "uniform", fp_model, data, plan, settings, settings.epochs, progress, {}, lambda model: None
    )


def apply_magnitude(fp_model, data: ClassifierData, plan: dict, settings: MagnitudeSettings, progress=None):
    """Prune by the plan, fine-tune ``ft_epochs``, quantize at the planned bits, ``qat_epochs`` of QAT."""
    from edgefl.compress.prune import apply_plan

    s = settings

    def prune_and_finetune(model):
        apply_plan(model, plan["prune"])
        _train(model, data.train, s.ft_epochs, s.ft_lr, s.batch_size, s.seed, data.preprocessing, progress)

    return _compress(
        "magnitude",
        fp_model,
        data,
        plan,
        s,
        s.qat_epochs,
        progress,
        {"bits": plan["bits_used"]},
        prune_and_finetune,
    )


def _compress(name, fp_model, data, plan, s, qat_epochs, progress, extra, before_qat) -> CompressionResult:
    """The shared tail: copy, ``before_qat(model)``, quantize, QAT, measure."""
    from edgefl.compress.qat import accuracy, quantize_for_qat, tensors
    from edgefl.compress.qmodules import model_quant_specs
    from edgefl.compress.report import layer_rows, totals
    from edgefl.compress.restore import compression_state
    from edgefl.train import seed_everything

    prep, shape = data.preprocessing, data.shape
    progress = progress or NullProgress()
    seed_everything(s.seed)
    fp_model = copy.deepcopy(fp_model).eval()
    acc_before = accuracy(fp_model, data.test, prep)
    model = copy.deepcopy(fp_model)
    before_qat(model)
    x, _ = tensors(data.train, prep)
    quantize_for_qat(model, plan["bits"], x[:512], s.weight_quantizer)
    _train(model, data.train, qat_epochs, s.lr, s.batch_size, s.seed, prep, progress)
    model.eval()
    bits = plan.get("bits_used", s.bits)
    state = compression_state(name, plan["prune"], model_quant_specs(model), bits=bits)
    return CompressionResult(
        model,
        state,
        layer_rows(fp_model, model, shape, ACT_RULE),
        totals(fp_model, model, shape, acc_before, accuracy(model, data.test, prep), ACT_RULE),
        extra,
    )


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
    from edgefl.compress.prune import apply_plan, flops_counter, l1_filter_scores
    from edgefl.compress.prune_plan import global_prune_plan

    layout, flops_fn = flops_counter(fp_model, input_shape)
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


UNIFORM = Method("uniform", "uniform QAT", UniformSettings, plan_uniform, apply_uniform, command=False)
MAGNITUDE = Method(
    "magnitude", "L1 magnitude pruning", MagnitudeSettings, plan_magnitude, apply_magnitude, command=False
)
