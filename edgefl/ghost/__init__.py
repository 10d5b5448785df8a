"""GHOST: guided hybrid quantization with one-to-one self-teaching.

Zhang, Lei, Xie, Li, Yang, Jia, "Guided Hybrid Quantization for Object Detection in (Multimodal) Remote
Sensing Imagery via One-to-one Self-teaching", IEEE TGRS 2023 (arXiv 2301.00131); re-implemented
without the official code (icey-zhang/GHOST has no licence).

Plan: per-conv bit widths from 1-D k-means on the FP weights (HQ, ``bits``) and the layers to pair for
distillation. Apply: the student is a quantized twin of the FP teacher, initialised from its weights
(GQSD, ``student``) → QAT with ``task_weight · CE + kd_weight · OST`` where OST is the SCM-gated
attention-map distillation between same-position layers (``ost``, ``train``) → the student, its cost
report and a JSON ``compression`` state that ``edgefl.compress.restore_model`` rebuilds it from.

This module is what the registry (``edgefl.methods``) sees: ``GhostSettings``, ``plan``, ``apply`` and
``METHOD``; torch is imported by the functions that need it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgefl.compress.method import ClassifierData, CompressionResult, Method
from edgefl.compress.targets import TargetSettings, target_from
from edgefl.errors import EdgeflError
from edgefl.ghost.bits import DEFAULT_BIT_RANGE
from edgefl.ghost.targets import back_off

GATE_MODES = ("scm", "open", "closed")  # the switch control machine learned, every gate open, every gate shut

DEFAULT_MEAN_BITS = 3.5  # the HQ rule when nothing else decides the bits (see GhostSettings.hq_rule)

ACT_RULE = "input"  # a conv's activation bits are those of the quantizer on its input (the previous conv's)


@dataclass(frozen=True)
class GhostSettings(TargetSettings):
    """Settings of one GHOST run (defaults: official code where it makes sense on a CPU budget).

    Attributes:
        target_bops, target_size, max_drop: a target (``edgefl.compress.targets``); a BOPs/size target
            chooses tau itself (``edgefl.ghost.targets``), so it excludes ``tau``, ``target_mean_bits``
            and ``uniform_bits``.
        tau: HQ distortion threshold (mean squared k-means distance × 1e6; the official 0.1 puts every
            ResNet-20 conv at 8 bits, ~120 gives 5/4/3 bits per stage); excludes ``target_mean_bits``.
        target_mean_bits: choose tau so the parameter-weighted mean bit width is at most this.
            Neither given (and no uniform bits or BOPs/size target): ``DEFAULT_MEAN_BITS`` (3.5), the
            one default of the library and of ``edgefl compress ghost`` (``hq_rule``).
        bit_range: (min, max) candidate bit widths.
        uniform_bits: skip HQ and give every conv this width (the uniform-QAT baseline).
        distill: add the OST loss (False = plain QAT of the same student).
        gate_mode: "scm" (learned gates), "open" (all on), "closed" (all off).
        trainable_gates: learn the SCM projections (project default; official code: frozen).
        gate_margin: price that opens gates for below-average mismatch (see ``edgefl.ghost.ost``).
        kd_weight: weight of the OST loss (official 400).
        task_weight: weight of the task loss, 1 + det_weight (official 2).
        qk_dim: SCM query/key dimension.
        epochs, batch_size, lr, weight_decay: the project training loop (SGD Nesterov, one-cycle
            schedule); weight decay 0 as in the official code (its 5e-4 never reached the optimizer).
        feature_layers: module names whose outputs are distilled; None = residual blocks, else every
            conv (``student.default_feature_layers``).
        seed: seeds the k-means, the initialisation of the SCM, the shuffling and the Gumbel noise.
    """

    tau: float | None = None
    target_mean_bits: float | None = None
    bit_range: tuple[int, int] = DEFAULT_BIT_RANGE
    uniform_bits: int | None = None
    distill: bool = True
    gate_mode: str = "scm"
    trainable_gates: bool = True
    gate_margin: float = 1.0
    kd_weight: float = 400.0
    task_weight: float = 2.0
    qk_dim: int = 128
    epochs: int = 3
    batch_size: int = 64
    lr: float = 0.02
    weight_decay: float = 0.0
    feature_layers: tuple[str, ...] | None = None
    seed: int = 0

    def hq_rule(self) -> tuple[float | None, float | None]:
        """(tau, target mean bits) the HQ search uses: the given tau, else the given target mean bits,
        else ``DEFAULT_MEAN_BITS`` (uniform bits and BOPs/size targets bypass this rule)."""
        if self.tau is not None:
            return self.tau, None
        return None, DEFAULT_MEAN_BITS if self.target_mean_bits is None else self.target_mean_bits

    def check(self) -> GhostSettings:
        """Return self after checking the settings, or raise EdgeflError naming the bad one."""
        lo, hi = self.bit_range
        target = target_from(self)
        fixed = [k for k in ("tau", "target_mean_bits", "uniform_bits") if getattr(self, k) is not None]
        if self.tau is not None and self.target_mean_bits is not None:
            raise EdgeflError(
                "tau and target_mean_bits (--tau, --target-bits) both choose the HQ threshold — give one"
            )
        if target is not None and target.has_cost and fixed:
            raise EdgeflError(
                "a BOPs/size target chooses the bits itself — "
                f"give the target or {', '.join(fixed)}, not both"
            )
        checks = [
            (1 <= lo <= hi <= 8, f"bit range {self.bit_range} — use 1 <= min <= max <= 8, e.g. 2 8"),
            (self.uniform_bits is None or 1 <= self.uniform_bits <= 8, "uniform bits — use 1..8"),
            (self.tau is None or self.tau > 0, f"tau {self.tau} — use a positive threshold such as 0.1"),
            (self.epochs >= 1, f"epochs {self.epochs} — use at least 1"),
            (self.batch_size >= 2, f"batch size {self.batch_size} — use at least 2 (the SCM uses BatchNorm)"),
            (
                self.gate_mode in GATE_MODES,
                f"gate mode {self.gate_mode!r} — use {', '.join(GATE_MODES)}",
            ),
            (self.kd_weight >= 0 and self.task_weight > 0, "loss weights — use kd >= 0 and task > 0"),
        ]
        for ok, what in checks:
            if not ok:
                raise EdgeflError(f"invalid GHOST setting: {what}")
        return self


def plan(teacher, data: ClassifierData, settings: GhostSettings, progress=None) -> dict:
    """HQ bits of every conv (for a BOPs/size target: at the threshold that meets it) and the distilled
    layers.

    Returns:
        {"bits": {conv: bits} in definition order, "tau": the threshold used (None for uniform bits),
        "feature_layers": [module names], "inputs": {conv: [producer conv or None, signed]}
        (``student.conv_inputs``), "left_float": {layer: why it is not quantized}, "knobs": tau, mean
        bits, epochs (what a target resolved to), "epochs"}.
    Raises:
        EdgeflError: a BOPs/size target that no bit widths in the range can meet (before the k-means).
    """
    import torch

    from edgefl.compress.graph import layers_left_float
    from edgefl.compress.qat import tensors
    from edgefl.ghost.bits import mean_bits
    from edgefl.ghost.student import conv_inputs, conv_params, hybrid_bits, resolve_feature_layers
    from edgefl.ghost.targets import resolve_bits

    torch.manual_seed(settings.seed)
    names = resolve_feature_layers(teacher, settings.feature_layers, data.shape)
    left_float = layers_left_float(teacher, data.shape)
    x = tensors(data.train, data.preprocessing)[0][:256]
    target, knobs = target_from(settings), {}
    if target is not None and target.has_cost:
        bits, tau, inputs, knobs = resolve_bits(teacher, data.shape, settings, target, left_float, x)
    else:
        bits, tau = hybrid_bits(teacher, settings, skip=left_float)
        inputs = conv_inputs(teacher, bits, x)
    mean = mean_bits(bits, conv_params(teacher))
    knobs = {**knobs, "tau": tau, "mean_bits": mean, "epochs": settings.epochs}
    return {
        "bits": bits,
        "tau": tau,
        "feature_layers": names,
        "inputs": inputs,
        "left_float": left_float,
        "knobs": knobs,
        "epochs": settings.epochs,
    }


def apply(
    teacher, data: ClassifierData, plan: dict, settings: GhostSettings, progress=None
) -> CompressionResult:
    """Train the quantized twin of ``teacher`` (not modified) at the planned bits, distilled from it.

    Returns:
        CompressionResult; ``extra`` holds bits, tau and the per-epoch history (losses, accuracy, gate
        open rates), ``parts["ost"]`` the trained OST/SCM module (None without distillation).
    """
    import copy

    import torch

    from edgefl.compress.qat import accuracy
    from edgefl.compress.report import layer_rows, totals
    from edgefl.ghost.bits import mean_bits
    from edgefl.ghost.student import conv_params, ghost_state, quantized_twin
    from edgefl.ghost.train import train_student

    torch.manual_seed(settings.seed)
    teacher = copy.deepcopy(teacher).eval()
    bits, names, inputs = plan["bits"], plan["feature_layers"], plan.get("inputs")
    student = quantized_twin(teacher, bits, inputs)
    history, ost = train_student(
        student,
        teacher,
        data.train,
        data.test,
        names,
        preprocessing=data.preprocessing,
        config=settings,
        progress=progress,
    )
    student.eval()
    shape, prep = data.shape, data.preprocessing
    before, after = accuracy(teacher, data.test, prep), accuracy(student, data.test, prep)
    tot = totals(teacher, student, shape, before, after, ACT_RULE)
    tot["mean_bits"] = mean_bits(bits, conv_params(student))
    state = ghost_state(bits, plan["tau"], settings, inputs, metrics=tot, feature_layers=names)
    return CompressionResult(
        student,
        state,
        layer_rows(teacher, student, shape, ACT_RULE),
        tot,
        {"bits": bits, "tau": plan["tau"], "history": history, "left_float": plan.get("left_float", {})},
        {"ost": ost},
    )


METHOD = Method(
    name="ghost", label="GHOST", settings=GhostSettings, plan=plan, apply=apply, back_off=back_off
)
