"""PIC-PQ: physics-inspired criterion for pruning-quantization joint learning.

W. Xie, X. Fan, X. Zhang, Y. Li, J. Lei, L. Fang, "PIC-PQ: Physics-Inspired Criterion for
Pruning-Quantization Joint Learning", arXiv 2312.00851 (2023); the search is LeGR's (Chin et al.,
CVPR 2020), the filter property HRank's feature-map rank (Lin et al., CVPR 2020).

Plan: filter rank property (``criterion``) → (a_l, b_l) by aging evolution (``search``) → global
pruning to the FLOPs target (``edgefl.compress.prune_plan``) → bit widths from the L1-mass ratio of the
pruned layers. Apply: physical removal → fine-tune → QAT (weights and activations at each layer's own
bits) → evaluation and BOPs/size accounting. This module is what the registry (``edgefl.methods``)
sees: ``PicpqSettings``, ``plan``, ``apply`` and ``METHOD``; torch is imported where it is used.

Documented deviations from the official code (defaults; see the spec):
- weights: symmetric per-channel grid with zero (MSE-chosen scale) instead of per-tensor tanh DoReFa
  (``weight_quantizer="dorefa_zero"`` gives the paper's); activations: the quantizer sits on each
  quantized conv's *input* at that conv's bits (so BOPs = MACs·b·b is what runs), with a calibrated
  clip range (``act_clip="dorefa"`` gives the fixed [0, 1]); one A+W QAT stage unless ``act_only_epochs``
  (the paper's activation-only stage 1; ``paper()`` runs both); b ≥ 3 clamp
  (the spec's project clamp is 2; a 2-bit layer costs < 1 % of the BOPs it saves and loses most of a
  point after a one-epoch QAT — ``paper()`` keeps 2);
  chain units pruned only where every chain layer still has quota; short schedules by default with a
  higher fine-tuning learning rate right after pruning (``PicpqSettings.paper()`` has the paper's sizes);
  filters of equal mean rank are ordered by their weight L1 norm (``tie_break="none"``: by index, as the
  official code) — on small maps every filter is full rank, so without it the criterion cannot choose.

Defaults (no target): B_max 4 for every stage (``criterion.default_max_bits``) and 90 % of FLOPs kept
(``targets.DEFAULT_FLOPS_TARGET``) — 4-bit QAT is lossless on MNIST ResNet-20, and light pruning lets the bit
rule take pruned layers to 3 bits. A target (``target_bops``, ``target_size``, ``max_drop``; see
``edgefl.compress.targets``) chooses B_max and the FLOPs kept instead (``edgefl.picpq.targets``).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace

import numpy as np

from edgefl.compress.method import ClassifierData, CompressionResult, Method
from edgefl.compress.targets import TargetSettings, target_from
from edgefl.errors import EdgeflError
from edgefl.picpq.targets import STEM_BITS, back_off
from edgefl.progress import NullProgress

ACT_RULE = "own"  # a layer's activation bits are its own (the quantizer on its input runs at them)


@dataclass(frozen=True)
class PicpqSettings(TargetSettings):
    flops_target: float | None = None  # FLOPs fraction kept (paper: 1 - prune_away/100); None: default
    max_bits: tuple | None = None  # stem, then one per stage; None: default_max_bits or the target's
    lam: float = 1 / 6
    min_bits: int = 3  # the paper's 2-bit layers need its 800 QAT epochs; paper() uses 2
    safeguard: float = 0.1
    check_every: int = 10
    rank_images: int = 256
    val_fraction: float = 0.1
    population: int = 6
    sample: int = 3
    generations: int = 6
    tau_hat: int = 16
    search_batch: int = 64
    sigma: float = 1.0
    mutate_fraction: float = 0.1
    ft_epochs: int = 2
    qat_epochs: int = 1
    act_only_epochs: int = 0  # QAT stage 1 (activations only) before the A+W stage; the paper: 400
    lr: float = 0.01  # QAT
    ft_lr: float = 0.05  # fine-tuning right after pruning (the paper: 0.01 for 400 epochs)
    batch_size: int = 128
    weight_quantizer: str = "symmetric"
    act_clip: str = "calibrate"
    tie_break: str = "l1"  # "none": the official property exactly (ties fall back to filter order)
    seed: int = 0

    @classmethod
    def paper(cls, **overrides) -> "PicpqSettings":
        """The official ResNet-56/CIFAR-10 sizes (hours on a GPU); with a cost target, B_max and the
        FLOPs kept are the target's."""
        steered = any(overrides.get(k) is not None for k in ("target_bops", "target_size"))
        knobs = {} if steered else {"flops_target": 0.45, "max_bits": (32, 8, 6, 4)}
        base = cls(
            **knobs,
            rank_images=768,
            population=64,
            sample=16,
            generations=400,
            tau_hat=200,
            search_batch=128,
            ft_epochs=400,
            ft_lr=0.01,
            qat_epochs=400,
            act_only_epochs=400,
            weight_quantizer="dorefa_zero",
            act_clip="dorefa",
            tie_break="none",
            min_bits=2,
        )
        return replace(base, **overrides)

    def check(self) -> "PicpqSettings":
        target = target_from(self)
        if target is not None and target.has_cost and (self.max_bits, self.flops_target) != (None, None):
            raise EdgeflError(
                "a BOPs/size target chooses --max-bits and --flops-target itself — give the target or those"
            )
        if self.flops_target is not None and not 0 < self.flops_target <= 1:
            raise EdgeflError(
                f"--flops-target {self.flops_target} must be in (0, 1] (fraction of FLOPs kept)"
            )
        if self.tie_break not in ("l1", "none"):
            raise EdgeflError(f"--tie-break {self.tie_break!r} must be 'l1' or 'none'")
        if self.max_bits is not None and any(b < self.min_bits for b in self.max_bits):
            raise EdgeflError(f"--max-bits {list(self.max_bits)} must all be >= {self.min_bits}")
        if self.lam < 0 or not 0 <= self.safeguard < 1:
            raise EdgeflError("--lam must be >= 0 and --safeguard in [0, 1)")
        return self


def _batches(x, size: int):
    return [x[i : i + size] for i in range(0, len(x), size)]


def plan(fp_model, data: ClassifierData, settings: PicpqSettings, progress=None) -> dict:
    """Search the deformation (a, b), prune to the FLOPs target on it, and give each layer its bits.

    Returns:
        {"prune": pruning plan, "bits": {conv: bits}, "flops_kept": fraction, "s_l1": {conv: L1-mass
        ratio}, "rank_mean": {conv: mean filter rank}, "search": SearchResult, "names": conv names,
        "not_pruned": {space: why its channels stay}, "left_float": {layer: why it is not quantized},
        "knobs": B_max, FLOPs kept and epochs as used (resolved from the target, if any), "epochs"}.
    Raises:
        EdgeflError: a BOPs/size target no plan can meet (before any training).
    """
    from edgefl.compress.graph import layers_left_float
    from edgefl.compress.prune import apply_plan, flops_counter, l1_filter_scores, layer_l1_ratio
    from edgefl.compress.prune_plan import global_prune_plan
    from edgefl.picpq.criterion import (
        assign_bits,
        break_rank_ties,
        filter_rank_property,
        importance,
        stage_max_bits,
    )
    from edgefl.picpq.search import evolve, mean_loss, sgd_steps
    from edgefl.picpq.targets import check_reachable, searched_keep, steer
    from edgefl.train import seed_everything

    s = settings
    seed_everything(s.seed)
    fp_model = copy.deepcopy(fp_model).eval()
    target = target_from(s)
    budget = None
    if target is not None and target.has_cost:  # a hopeless target is refused before the data is read
        budget = check_reachable(fp_model, data.shape, target, STEM_BITS, s.min_bits, s.safeguard)
    layout, flops_fn = flops_counter(fp_model, data.shape)
    names = [c.name for c in layout.convs]
    if not names:
        raise EdgeflError(f"{type(fp_model).__name__} has no Conv2d layer — PIC-PQ prunes convolutions")
    x_fit, y_fit, x_val, y_val = _fit_and_val(data, s)

    rank_x = x_fit[: s.rank_images]
    fp = filter_rank_property(fp_model, layout, _batches(rank_x, 128))
    if s.tie_break == "l1":
        fp = break_rank_ties(fp, l1_filter_scores(fp_model, layout), len(rank_x))
    fp_std = np.array([fp[n].std() for n in names])
    max_bits, keep, costs, knobs = steer(fp_model, layout, flops_fn, data.shape, s, fp, budget, target)

    def scores_for(a, b):
        return {n: importance(fp[n], a[i], b[i]) for i, n in enumerate(names)}

    def plan_for(a, b):
        return global_prune_plan(layout, scores_for(a, b), flops_fn, keep, s.safeguard, s.check_every)

    def fitness(a, b):
        pruned = apply_plan(copy.deepcopy(fp_model), plan_for(a, b)[0])
        sgd_steps(pruned, x_fit, y_fit, s.tau_hat, s.search_batch, lr=0.01, seed=s.seed)
        return mean_loss(pruned, x_val, y_val)

    search = evolve(
        fitness,
        fp_std,
        s.population,
        s.sample,
        s.generations,
        s.sigma,
        s.mutate_fraction,
        s.seed,
        progress or NullProgress(),
    )
    scores, keep = searched_keep(costs, scores_for(search.best.a, search.best.b), fp, keep, max_bits, budget)
    prune, flops = global_prune_plan(layout, scores, flops_fn, keep, s.safeguard, s.check_every)
    ratios = layer_l1_ratio(fp_model, apply_plan(copy.deepcopy(fp_model), prune), names)
    flops_kept = flops / flops_fn({sp: np.ones(n, bool) for sp, n in layout.spaces.items()})
    return {
        "prune": prune,
        "bits": assign_bits(ratios, stage_max_bits(layout, max_bits), s.lam, s.min_bits),
        "flops_kept": flops_kept,
        "s_l1": ratios,
        "rank_mean": {n: float(fp[n].mean()) for n in names},
        "search": search,
        "names": names,
        "not_pruned": dict(layout.fixed),
        "left_float": layers_left_float(fp_model, data.shape),
        "knobs": {**knobs, "flops_target": keep, "flops_kept": flops_kept},
        "epochs": (s.ft_epochs, s.qat_epochs),
    }


def apply(
    fp_model, data: ClassifierData, plan: dict, settings: PicpqSettings, progress=None
) -> CompressionResult:
    """Prune ``fp_model`` (not modified) by the plan, fine-tune, quantize at the planned bits, QAT.

    Returns:
        CompressionResult; totals add ``flops_kept`` and the accuracy after pruning and after
        fine-tuning; ``extra`` holds the search summary and the torch thread count.
    """
    import torch

    from edgefl.compress.prune import apply_plan
    from edgefl.compress.qat import accuracy, quantize_for_qat
    from edgefl.compress.qmodules import float_weights, model_quant_specs
    from edgefl.compress.report import layer_rows, totals
    from edgefl.compress.restore import compression_state
    from edgefl.train import seed_everything, train_classifier

    s, test, prep, shape = settings, data.test, data.preprocessing, data.shape
    progress = progress or NullProgress()
    seed_everything(s.seed)
    fp_model = copy.deepcopy(fp_model).eval()
    acc_before = accuracy(fp_model, test, prep)
    model = apply_plan(copy.deepcopy(fp_model), plan["prune"])
    acc_pruned = accuracy(model, test, prep)

    common = dict(batch_size=s.batch_size, seed=s.seed, preprocessing=prep, progress=progress)
    if s.ft_epochs > 0:
        train_classifier(model, data.train, None, epochs=s.ft_epochs, lr=s.ft_lr, **common)
    acc_ft = accuracy(model, test, prep)
    x_fit = _fit_and_val(data, s)[0]
    quantize_for_qat(model, plan["bits"], x_fit[:512], s.weight_quantizer, s.act_clip)
    if s.act_only_epochs > 0:  # the paper's QAT stage 1: activations quantized, weights still float
        with float_weights(model):
            train_classifier(model, data.train, None, epochs=s.act_only_epochs, lr=s.lr, **common)
    if s.qat_epochs > 0:
        train_classifier(model, data.train, None, epochs=s.qat_epochs, lr=s.lr, **common)
    model.eval()
    acc_after = accuracy(model, test, prep)

    search, names = plan["search"], plan["names"]
    state = compression_state(
        "picpq",
        plan["prune"],
        model_quant_specs(model),
        settings=_jsonable(asdict(s)),
        knobs=plan.get("knobs"),
        deformation=search.best.to_dict(names),
    )
    per_layer = {
        n: {"s_l1": round(plan["s_l1"][n], 4), "rank_mean": round(plan["rank_mean"][n], 3)} for n in names
    }
    tot = totals(fp_model, model, shape, acc_before, acc_after, ACT_RULE)
    tot.update(
        {"flops_kept": plan["flops_kept"], "accuracy_pruned": acc_pruned, "accuracy_finetuned": acc_ft}
    )
    search_info = {
        "identity_loss": search.identity_loss,
        "best_loss": search.best.loss,
        "evaluations": len(search.history),
        "losses": [round(v, 5) for v in search.history],
    }
    return CompressionResult(
        model,
        state,
        layer_rows(fp_model, model, shape, ACT_RULE, per_layer),
        tot,
        {
            "search": search_info,
            "not_pruned": plan.get("not_pruned", {}),
            "left_float": plan.get("left_float", {}),
            "torch_threads": torch.get_num_threads(),
        },
    )


def _fit_and_val(data: ClassifierData, s: PicpqSettings):
    """Normalised (x_fit, y_fit, x_val, y_val): the seeded split of the training data."""
    from edgefl.compress.qat import split_validation, tensors

    x_all, y_all = tensors(data.train, data.preprocessing)
    fit_idx, val_idx = split_validation(len(data.train), s.val_fraction, s.seed)
    return x_all[fit_idx], y_all[fit_idx], x_all[val_idx], y_all[val_idx]


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


METHOD = Method(
    name="picpq", label="PIC-PQ", settings=PicpqSettings, plan=plan, apply=apply, back_off=back_off
)
