"""PIC-PQ steered by a target: B_max per stage and the FLOPs kept from a BOPs/size budget.

PIC-PQ's cost is fixed by two knobs before any training — the maximum bits per stage (B_max) and the
fraction of FLOPs kept — plus which filters its search prunes. The resolver (``resolve_knobs``) runs
on the filter property (the identity deformation a = 1, b = 0) and predicts the cost of a knob setting
exactly as ``edgefl.compress.bops`` will count the result (prune, L1-mass ratios, bit rule, MACs):

1. the highest B_max (the same for every stage, 8 down to min_bits + 1; the stem keeps its own) that
   meets the budget while keeping at least ``KEEP_LIGHT`` of the FLOPs, at the largest such keep up to
   ``KEEP_MAX`` (PIC-PQ always prunes a little: its bit rule only acts on pruned layers);
2. else heavier pruning (keep down to ``KEEP_FLOOR``) at B_max = min_bits + 1, then min_bits;
3. else the one-line refusal (``edgefl.compress.targets.refuse``).

A cheaper, data-free bound (``check_reachable``: every layer at the narrowest width its quota allows,
every quantized layer at min_bits) refuses hopeless targets before the data is even touched.

After the search (``fit_keep``), the searched deformation prunes other filters, so the keep is refit:
the largest keep (<= the resolved one) at which the searched plan still meets the budget; if none, the
identity plan (which met it) is used.

Back-off for ``max_drop`` (``back_off``): without a cost target, each attempt raises every stage's
B_max by one (up to 8) and keeps 0.05 more FLOPs (up to 1); with one, the plan is kept and the
fine-tuning and QAT epochs grow (2x, then 3x) — the cost target is never given up for accuracy.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from edgefl.compress.targets import Budget, Target, cost_at_bits, largest_passing, layer_costs, refuse

STEM_BITS = 32  # the stem stays float (PIC-PQ)
DEFAULT_FLOPS_TARGET = 0.9  # without a target (edgefl.picpq's module doc); B_max: criterion.default_max_bits
KEEP_MAX = 0.9
KEEP_LIGHT = 0.8
KEEP_FLOOR = 0.01
TOP_BITS = 8


class CostModel:
    """Predicts (BOPs, size) of PIC-PQ plans of one float model without training anything.

    Args:
        fp_model: the float, unpruned model.
        layout, flops_fn: its pruning layout and FLOPs counter (``prune.flops_counter``).
        input_shape: [C, H, W].
        settings: PicpqSettings (lam, min_bits, safeguard, check_every).
    """

    def __init__(self, fp_model, layout, flops_fn, input_shape, settings):
        self.fp, self.layout, self.flops_fn, self.shape, self.s = (
            fp_model,
            layout,
            flops_fn,
            input_shape,
            settings,
        )
        self.names = [c.name for c in layout.convs]
        self.stages = max(c.stage for c in layout.convs) + 1
        self._pruned: dict = {}

    def max_bits(self, stem: int, b: int) -> tuple:
        """B_max per stage: the stem's own, then ``b`` for every stage."""
        return (int(stem),) + (int(b),) * (self.stages - 1)

    def _prune(self, scores, keep: float, key):
        """(plan, L1 ratios, layer costs, other bits) of the plan at ``keep`` (cached per scores key)."""
        from edgefl.compress.prune import apply_plan, layer_l1_ratio
        from edgefl.compress.prune_plan import global_prune_plan

        if (key, keep) not in self._pruned:
            plan, _ = global_prune_plan(
                self.layout, scores, self.flops_fn, keep, self.s.safeguard, self.s.check_every
            )
            pruned = apply_plan(copy.deepcopy(self.fp), plan)
            ratios = layer_l1_ratio(self.fp, pruned, self.names)
            self._pruned[(key, keep)] = (plan, ratios, *layer_costs(pruned, self.shape))
        return self._pruned[(key, keep)]

    def cost(self, scores, keep: float, max_bits, key="identity") -> tuple[float, float, dict]:
        """(BOPs, size bytes, bits) of the plan at ``keep`` with ``max_bits`` (own activation bits)."""
        from edgefl.picpq.criterion import assign_bits, stage_max_bits

        _, ratios, layers, other = self._prune(scores, keep, key)
        bits = assign_bits(ratios, stage_max_bits(self.layout, max_bits), self.s.lam, self.s.min_bits)
        bops, size = cost_at_bits(layers, other, bits, bits)
        return bops, size, bits


def reference_cost(fp_model, input_shape) -> tuple[float, float]:
    """(BOPs, size bytes) of the float model, everything at 32 bits."""
    layers, other = layer_costs(fp_model, input_shape)
    return cost_at_bits(layers, other, {}, {})


def check_reachable(fp_model, input_shape, target: Target, stem_bits: int, min_bits: int, safeguard: float):
    """Refuse (EdgeflError) a cost target that no PIC-PQ plan can meet: the bound has every layer at the
    narrowest width its quota allows and every quantized layer at ``min_bits`` (the stem at its own).

    Returns:
        the budget (``edgefl.compress.targets.Budget``).
    """
    from edgefl.compress.prune_plan import layer_quota

    layers, other = layer_costs(fp_model, input_shape)
    modules = dict(fp_model.named_modules())
    ref_bops, ref_size = cost_at_bits(layers, other, {}, {})
    budget = target.budget(ref_bops, ref_size)
    first = layers[0].name
    floor_macs, w_bits = [], {}
    for lc in layers:
        w = modules[lc.name].weight
        c_out, c_in = int(w.shape[0]), int(w.shape[1])
        out_keep = (c_out - layer_quota(c_out, safeguard)) / c_out if lc.kind == "conv" else 1.0
        in_keep = 1.0 if lc.name == first else (c_in - layer_quota(c_in, safeguard)) / c_in
        floor_macs.append(
            replace(lc, macs=int(lc.macs * out_keep * in_keep), weights=int(lc.weights * out_keep * in_keep))
        )
        if lc.kind == "conv":
            w_bits[lc.name] = stem_bits if lc.name == first else min_bits
    best_bops, best_size = cost_at_bits(floor_macs, other, w_bits, w_bits)
    how = f"the narrowest widths the safeguard allows with every quantized layer at {min_bits} bits"
    refuse(target, budget, best_bops, best_size, ref_bops, ref_size, how)
    return budget


def resolve_knobs(costs: CostModel, scores, budget: Budget, target: Target, stem_bits: int) -> dict:
    """B_max and keep for the budget (module doc, steps 1-3), on the identity deformation's scores.

    Returns:
        {"max_bits": tuple, "flops_target": keep, "predicted_bops": ..., "predicted_size_bytes": ...}.
    Raises:
        EdgeflError: no setting meets the budget (before any training).
    """
    lo_bits = costs.s.min_bits

    def fits(b, keep):
        bops, size, _ = costs.cost(scores, keep, costs.max_bits(stem_bits, b))
        return budget.fits(bops, size)

    tries = [(b, KEEP_LIGHT, KEEP_MAX, 3) for b in range(TOP_BITS, lo_bits, -1)]
    tries += [(b, KEEP_FLOOR, KEEP_LIGHT, 8) for b in (lo_bits + 1, lo_bits)]
    for b, lo, hi, steps in tries:
        keep = largest_passing(lo, hi, lambda k, b=b: fits(b, k), steps)
        if keep is not None:
            bops, size, _ = costs.cost(scores, keep, costs.max_bits(stem_bits, b))
            return {
                "max_bits": costs.max_bits(stem_bits, b),
                "flops_target": keep,
                "predicted_bops": bops,
                "predicted_size_bytes": size,
            }
    bops, size, _ = costs.cost(scores, KEEP_FLOOR, costs.max_bits(stem_bits, lo_bits))
    ref_bops, ref_size = reference_cost(costs.fp, costs.shape)
    refuse(
        target,
        budget,
        bops,
        size,
        ref_bops,
        ref_size,
        f"the most pruning this model's filter ranking allows at {lo_bits} bits",
    )
    raise AssertionError("refuse() returns only when the budget is met")  # pragma: no cover


def fit_keep(costs: CostModel, scores, keep: float, max_bits, budget: Budget) -> float | None:
    """The largest keep <= ``keep`` at which the plan from ``scores`` meets the budget (None: none)."""
    return largest_passing(
        KEEP_FLOOR, keep, lambda k: budget.fits(*costs.cost(scores, k, max_bits, key="searched")[:2]), 10
    )


def back_off(settings, plan: dict, attempt: int, target: Target):
    """(settings, plan or None to plan again) of attempt ``attempt`` (1, 2) after the accuracy drop
    exceeded ``max_drop``; None when nothing gentler is left (see the module doc)."""
    knobs = plan["knobs"]
    if target.has_cost:  # keep the plan, train longer
        ft, qat = plan["epochs"]
        more = replace(settings, ft_epochs=ft * (attempt + 1), qat_epochs=max(1, qat) * (attempt + 1))
        return more, {**plan, "knobs": {**knobs, "ft_epochs": more.ft_epochs, "qat_epochs": more.qat_epochs}}
    stem, *stages = knobs["max_bits"]
    if all(b >= TOP_BITS for b in stages) and knobs["flops_target"] >= 1:
        return None
    gentler = (stem, *(min(TOP_BITS, b + 1) for b in stages))
    return replace(settings, max_bits=gentler, flops_target=min(1.0, knobs["flops_target"] + 0.05)), None


def steer(fp_model, layout, flops_fn, input_shape, settings, scores, budget: Budget | None, target):
    """The knobs ``plan`` runs with: (max_bits, keep, cost model or None, knobs to report).

    Without a cost target: the settings' values or the defaults. With one: ``resolve_knobs`` on the
    identity deformation's ``scores`` (raises EdgeflError when unreachable).
    """
    from edgefl.picpq.criterion import default_max_bits

    s = settings
    base = {"ft_epochs": s.ft_epochs, "qat_epochs": s.qat_epochs, "min_bits": s.min_bits}
    if budget is None:
        stages = max(c.stage for c in layout.convs) + 1
        max_bits = tuple(s.max_bits or default_max_bits(stages))
        keep = s.flops_target if s.flops_target is not None else DEFAULT_FLOPS_TARGET
        return max_bits, keep, None, {"max_bits": list(max_bits), "flops_target": keep, **base}
    costs = CostModel(fp_model, layout, flops_fn, input_shape, s)
    found = resolve_knobs(costs, scores, budget, target, STEM_BITS)
    knobs = {**found, "max_bits": list(found["max_bits"]), **base}
    return found["max_bits"], found["flops_target"], costs, knobs


def searched_keep(costs: CostModel | None, searched, identity, keep: float, max_bits, budget):
    """(scores, keep) of the final plan: the searched deformation at the largest keep that still meets
    the budget, or the identity deformation at ``keep`` (which did) when none does."""
    if costs is None:
        return searched, keep
    refit = fit_keep(costs, searched, keep, max_bits, budget)
    return (searched, refit) if refit is not None else (identity, keep)
