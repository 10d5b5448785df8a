"""The shape every compression method has: settings → plan → apply → ``CompressionResult``.

A method is a ``Method`` entry (one per method module: GHOST, PIC-PQ, the baselines, STAD) in the
registry ``edgefl.methods.registry.METHODS``; the CLI's ``edgefl compress NAME``, the Python API
``edgefl.methods.NAME(model, data, ...)`` and the export routing are built from that registry.

Contract of a ``Method``:
- ``settings``: a dataclass whose defaults are the method's defaults; ``settings(...).check()``
  returns the instance unchanged or raises ``EdgeflError`` naming the bad setting (nothing is rewritten).
- ``plan(model, data, settings, progress) -> dict``: the decisions taken on the float model — bit
  widths, which filters go — before the compressed model is trained. Seeded by ``settings.seed``;
  never modifies ``model``.
- ``apply(model, data, plan, settings, progress) -> CompressionResult``: carries the plan out on a copy
  of ``model`` (quantize, prune, fine-tune, distil) and measures the result; seeded again, so the
  same plan and settings give the same model. ``run`` calls the two in order; the plan may be
  inspected or edited in between.
- ``export``: ``(checkpoint, out, profile, precision, fmt) -> manifest`` for checkpoints the method
  claims (``claims(path) -> bool``); ``None`` for methods whose checkpoints are classifiers that the
  generic ``edgefl export`` pipeline handles (their compressed structure is rebuilt by
  ``edgefl.compress.restore_model`` from the checkpoint's ``compression`` state).

Targets (``edgefl.compress.targets``): a method whose settings mix in ``TargetSettings`` can be steered
by ``target_bops``/``target_size`` (its ``plan`` resolves them into its own knobs, reported as
``plan["knobs"]``, and refuses an impossible one before any training) and ``max_drop`` (checked by
``run`` after ``apply``; when exceeded, ``back_off`` gives gentler settings, up to
``targets.MAX_ATTEMPTS`` attempts in all). The result's ``extra["target"]`` says what was asked and
what was reached.

``data`` is what the method learns from: ``ClassifierData`` for the classifier methods, a list of
``edgefl.data.HSIScene`` for STAD. This module is the compression core (no method imports it back).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClassifierData:
    """Train/test splits of a classifier and how its inputs are prepared.

    Attributes:
        train, test: ``edgefl.data.ArrayData`` (x unnormalised, y int labels); train feeds every
            decision and training step, test is only evaluated.
        preprocessing: the checkpoint's normalisation dict (None = none).
        input_shape: [C, H, W] for cost accounting (default: the shape of one training input).
    """

    train: object
    test: object
    preprocessing: dict | None = None
    input_shape: Sequence[int] | None = None

    @property
    def shape(self) -> list[int]:
        """[C, H, W] of one input."""
        return [int(d) for d in (self.input_shape or self.train.x.shape[1:])]


@dataclass
class CompressionResult:
    """What every method returns.

    Attributes:
        model: the compressed model (eval mode).
        state: the checkpoint's ``config["compression"]`` (``method``, ``version``, ``prune``, ``layers``
            — what ``restore_model`` rebuilds — plus the method's own summary).
        layers: one row per conv/linear layer (``edgefl.compress.report.layer_rows``).
        totals: size, BOPs, ratios, accuracy before/after/drop (``edgefl.compress.report.totals``) plus
            the method's own figures.
        extra: JSON-ready method facts shown next to the totals (GHOST: bits, tau, history; PIC-PQ: search).
        parts: by-products that are not JSON (GHOST: the trained OST module; STAD: the teacher).
    """

    model: object
    state: dict
    layers: list[dict]
    totals: dict
    extra: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready summary: the headline figures (BOPs and size ratios, accuracy before/after, where the
        method reports them), totals, layers and the method's extra facts (``target`` among them)."""
        head = ("bops_ratio", "size_ratio", "accuracy_before", "accuracy_after")
        return {
            **{k: self.totals[k] for k in head if k in self.totals},
            "totals": self.totals,
            "layers": self.layers,
            **self.extra,
        }


@dataclass(frozen=True)
class Method:
    """One compression method as the registry, the CLI, the Python API and export see it.

    Attributes:
        name: registry key — ``edgefl compress NAME`` and ``edgefl.methods.NAME(...)``.
        label: how help texts name it (e.g. "PIC-PQ").
        settings: the settings dataclass (see the module contract).
        plan, apply: see the module contract.
        command: whether ``edgefl compress NAME`` exists (its options: ``edgefl/cli/compress_NAME.py``).
        export, claims: the method's own bundle exporter and the test for checkpoints it handles.
        back_off: ``(settings, plan, attempt, target) -> (settings, plan | None) | None``: the settings
            of the next attempt when ``max_drop`` was exceeded, with the plan to apply (None: run
            ``plan`` again; a plan: apply it as is, e.g. to train longer), or None when nothing
            gentler is left.
    """

    name: str
    label: str
    settings: type
    plan: Callable
    apply: Callable
    command: bool = True
    export: Callable | None = None
    claims: Callable | None = None
    back_off: Callable | None = None


def run(method: Method, model, data, settings=None, progress=None) -> CompressionResult:
    """Check the settings, plan, apply: one compression run.

    Args:
        method: a registry entry.
        model: the trained float model (not modified; None for methods that train their own, e.g. STAD).
        data: ``ClassifierData`` (or the method's own data, see the module doc).
        settings: an instance of ``method.settings`` (default: its defaults).
        progress: an ``edgefl.progress`` object (None = silent).
    Returns:
        the method's CompressionResult; for methods with targets, ``extra["target"]`` (see
        ``targets.report``) — with ``max_drop``, the attempt with the smallest drop is returned (the
        first that meets it) and ``extra["target"]["attempts"]`` lists every attempt.
    """
    from edgefl.compress import targets

    settings = (settings if settings is not None else method.settings()).check()
    target = targets.target_from(settings)
    tries = targets.MAX_ATTEMPTS if target is not None and target.max_drop is not None else 1
    attempts, best, plan = [], None, None
    for attempt in range(tries):
        if attempt:
            step = method.back_off(settings, plan, attempt, target) if method.back_off else None
            if step is None:
                break
            settings, plan = step[0].check(), step[1]
        if plan is None:
            plan = method.plan(model, data, settings, progress)
        result = method.apply(model, data, plan, settings, progress)
        knobs = plan.get("knobs", {}) if isinstance(plan, dict) else {}
        if tries == 1:
            best = (result, knobs)
            break
        attempts.append(targets.attempt_summary(knobs, result.totals))
        if best is None or result.totals["accuracy_drop_points"] < best[0].totals["accuracy_drop_points"]:
            best = (result, knobs)
        if targets.drop_met(target, result.totals):
            break
    result, knobs = best
    if isinstance(settings, targets.TargetSettings):
        result.extra["target"] = targets.report(target, result.totals, knobs, attempts)
    return result
