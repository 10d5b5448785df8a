"""GHOST: guided hybrid quantization with one-to-one self-teaching (spec ghost.md).

Pipeline (``ghost_compress``): HQ bit search on the FP weights (``ghost_bits``) → the student is a
quantized twin of the FP teacher, initialised from its weights (GQSD) → QAT with
``task_weight · CE + kd_weight · OST`` where OST is the SCM-gated attention-map distillation between
same-position layers (``ghost_ost``) → the student plus a JSON ``compression`` state that
``ghost_restore.restore`` rebuilds the quantized structure from.

Quantizers and wrappers come from the compression core (``quant``/``qmodules``): DoReFa weights with
2^b levels and no zero (``dorefa``), DoReFa activations ``q_b(clamp(x, 0, 1))`` (``range``, clip 1).
Each conv's *input* is quantized with the bits of the conv before it in definition order
("activations after a layer take its bits"); the first conv sees the raw (32-bit) image. The
classifier (Linear) stays FP32. Works on any ``nn.Module`` with Conv2d layers; which layers are paired
for distillation is a function of the model (``feature_layers``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

from torch import nn

from edgefl.compress.ghost_bits import DEFAULT_BIT_RANGE, conv_weights_from_model, mean_bits, search_bits
from edgefl.errors import EdgeflError

METHOD = "ghost"
STATE_VERSION = 1

FeatureLayers = Callable[[nn.Module], list]


@dataclass
class GhostConfig:
    """Settings of one GHOST run (defaults: official code where it makes sense on a CPU budget).

    Attributes:
        tau: HQ distortion threshold (mean squared k-means distance × 1e6); official default 0.1.
        target_mean_bits: choose tau so the parameter-weighted mean bit width is at most this
            (overrides ``tau``); None = use ``tau``.
        bit_range: (min, max) candidate bit widths.
        uniform_bits: skip HQ and give every conv this width (the uniform-QAT baseline).
        distill: add the OST loss (False = plain QAT of the same student).
        gate_mode: "scm" (learned gates), "open" (all on), "closed" (all off).
        trainable_gates: learn the SCM projections (project default; official code: frozen).
        gate_margin: price that opens gates for below-average mismatch (see ghost_ost).
        kd_weight: weight of the OST loss (official 400).
        task_weight: weight of the task loss, 1 + det_weight (official 2).
        qk_dim: SCM query/key dimension.
        epochs, batch_size, lr, weight_decay: the project training loop (SGD Nesterov, one-cycle
            schedule); weight decay 0 as in the official code (its 5e-4 never reached the optimizer).
        seed: seeds the k-means, the initialisation of the SCM, the shuffling and the Gumbel noise.
    """

    tau: float = 0.1
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
    seed: int = 0

    def validated(self) -> GhostConfig:
        """Return self after checking the settings, or raise EdgeflError naming the bad one."""
        lo, hi = self.bit_range
        checks = [
            (1 <= lo <= hi <= 8, f"bit range {self.bit_range} — use 1 <= min <= max <= 8, e.g. 2 8"),
            (self.uniform_bits is None or 1 <= self.uniform_bits <= 8, "uniform bits — use 1..8"),
            (self.tau > 0, f"tau {self.tau} — use a positive threshold such as 0.1"),
            (self.epochs >= 1, f"epochs {self.epochs} — use at least 1"),
            (self.batch_size >= 2, f"batch size {self.batch_size} — use at least 2 (the SCM uses BatchNorm)"),
            (
                self.gate_mode in ("scm", "open", "closed"),
                f"gate mode {self.gate_mode!r} — use scm, open, closed",
            ),
            (self.kd_weight >= 0 and self.task_weight > 0, "loss weights — use kd >= 0 and task > 0"),
        ]
        for ok, what in checks:
            if not ok:
                raise EdgeflError(f"invalid GHOST setting: {what}")
        return self


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


def hybrid_bits(model: nn.Module, config: GhostConfig) -> tuple[dict[str, int], float | None]:
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


def compression_state(bits: Mapping[str, int], tau: float | None, config: GhostConfig, **summary) -> dict:
    """JSON state stored in the checkpoint config under ``compression`` (what restore needs + summary)."""
    return {
        "method": METHOD,
        "version": STATE_VERSION,
        "bits": dict(bits),
        "layers": ghost_layer_specs(bits),
        "tau": tau,
        "config": asdict(config),
        **summary,
    }


@dataclass
class GhostResult:
    """Outcome of ``ghost_compress``.

    Attributes:
        model: the trained quantized student (eval mode).
        bits: ``{conv name: bits}``.
        tau: HQ threshold used (None for uniform bits).
        state: the checkpoint ``compression`` state.
        metrics: accuracy before/after, size, BOPs, ratios, mean bits.
        history: per-epoch losses, accuracy and per-layer gate open rates.
        ost: the trained OST/SCM module (None without distillation); not part of the checkpoint.
    """

    model: nn.Module
    bits: dict[str, int]
    tau: float | None
    state: dict
    metrics: dict
    history: list[dict]
    ost: nn.Module | None = None


def ghost_compress(
    teacher: nn.Module,
    train,
    test,
    *,
    preprocessing: dict | None,
    config: GhostConfig | None = None,
    feature_layers: FeatureLayers | Sequence[str] | None = None,
    input_shape: Sequence[int] | None = None,
    progress=None,
) -> GhostResult:
    """Compress an FP conv model with GHOST (HQ bits + GQSD with OST/SCM), library entry point.

    Args:
        teacher: trained FP model (not modified).
        train, test: ``edgefl.data.ArrayData`` sets (x unnormalised, y int labels).
        preprocessing: the checkpoint's preprocessing dict (applied to every batch).
        config: settings (defaults: ``GhostConfig()``).
        feature_layers: module names (or a function of the model returning them) whose outputs are
            distilled; default ``default_feature_layers``.
        input_shape: [C, H, W] for BOPs; default the shape of ``train.x[0]``.
        progress: an ``edgefl.progress`` object (None = silent).

    Returns:
        GhostResult.
    """
    import torch

    from edgefl.compress.ghost_report import size_and_bops
    from edgefl.compress.ghost_train import train_student
    from edgefl.train import evaluate

    config = (config or GhostConfig()).validated()
    torch.manual_seed(config.seed)
    teacher = copy.deepcopy(teacher).eval()
    names = _resolve_feature_layers(teacher, feature_layers)
    bits, tau = hybrid_bits(teacher, config)
    student = quantized_twin(teacher, bits)
    history, ost = train_student(
        student, teacher, train, test, names, preprocessing=preprocessing, config=config, progress=progress
    )
    student.eval()
    shape = list(input_shape or train.x.shape[1:])
    before = evaluate(teacher, test, preprocessing)
    after = evaluate(student, test, preprocessing)
    metrics = {
        "accuracy_before": float(before["accuracy"]),
        "accuracy_after": float(after["accuracy"]),
        "mean_bits": mean_bits(bits, {n: m.weight.numel() for n, m in _convs(student).items()}),
        **size_and_bops(teacher, student, shape),
    }
    state = compression_state(bits, tau, config, metrics=metrics, feature_layers=names)
    return GhostResult(student, bits, tau, state, metrics, history, ost)


def _convs(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def _resolve_feature_layers(model: nn.Module, feature_layers) -> list[str]:
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


def compress_checkpoint_ghost(
    checkpoint, out, config: GhostConfig, data: str | None = None, progress=None, feature_layers=None
) -> dict:
    """Load an FP checkpoint, run GHOST on its seeded data split, write the compressed checkpoint.

    Args:
        checkpoint: float checkpoint directory.
        out: compressed checkpoint directory to write.
        config: GhostConfig.
        data: dataset name/path (default: the checkpoint's).
        progress: an ``edgefl.progress`` object.
        feature_layers: see ``ghost_compress``.

    Returns:
        JSON-ready summary: checkpoint path, bits, tau, totals, per-layer rows, history.
    """
    from edgefl.compress.ghost_report import layer_rows
    from edgefl.compress.pipeline import CompressionResult, load_float_checkpoint, save_compressed

    ckpt, train, test = load_float_checkpoint(checkpoint, data)
    shape = ckpt.config["input_shape"]
    result = ghost_compress(
        ckpt.model,
        train,
        test,
        preprocessing=ckpt.config.get("preprocessing"),
        config=config,
        feature_layers=feature_layers,
        input_shape=shape,
        progress=progress,
    )
    totals = dict(result.metrics)
    totals["accuracy_drop_points"] = round(100 * (totals["accuracy_before"] - totals["accuracy_after"]), 4)
    rows = layer_rows(result.model, shape)
    path = save_compressed(out, CompressionResult(result.model, result.state, rows, totals), ckpt.config)
    return {
        "checkpoint": path,
        "bits": result.bits,
        "tau": result.tau,
        "totals": totals,
        "layers": rows,
        "history": result.history,
    }
