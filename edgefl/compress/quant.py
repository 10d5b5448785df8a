"""Straight-through fake quantizers shared by every compression method.

Every quantizer is an ``nn.Module`` with a ``spec()`` dict (JSON, used by checkpoints) and a
registry entry, so a compressed model can be rebuilt from its config without pickle.

Weight quantizers implement ``grid(w) -> (ints, scale)`` with ``ints * scale[:, None, ...] == w_q``:
the integer grid the exporter turns into an int8 initializer + ``DequantizeLinear``.
Activation quantizers implement ``export_params() -> (scale, qmin, qmax, lo, hi)``.

Fake quantization uses ``torch.fake_quantize_per_channel_affine`` / ``_per_tensor_affine`` (their
backward is the clamped straight-through estimator). In ``export_mode`` the ops run with 8-bit container
ranges (-128..127 / 0..255) and constant scales held in buffers, which the TorchScript ONNX exporter
emits as QuantizeLinear/DequantizeLinear at opset 13 (sub-8-bit ranges are rejected by the symbolic).

Quantizers:
- ``SymmetricWeightQuantizer``: signed grid with zero, integers +-(2^(b-1)-1), per-channel (default)
  or per-tensor scale chosen by max-abs or by a small MSE search over clipping ratios.
- ``DoReFaWeightQuantizer``: tanh-normalised DoReFa weights. ``zero=True`` is PIC-PQ's variant
  (grid +-(2^(b-1)-1)/(2^(b-1)-1), max not detached); ``zero=False`` is GHOST's (2^k levels on [-1, 1],
  no zero, max detached).
- ``RangeActQuantizer``: unsigned (or signed) uniform activations on [0, clip]; ``clip`` is a buffer
  (1.0 = DoReFa's clamp to [0, 1]) that ``calibrating`` mode can set from data.
"""

from __future__ import annotations

import torch
from torch import nn

FULL_PRECISION_BITS = 32


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest with an identity gradient (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def quantize_k(x: torch.Tensor, bits: int) -> torch.Tensor:
    """DoReFa ``q_k``: round ``x`` in [0, 1] to ``2^k`` levels, straight-through gradient."""
    if bits >= FULL_PRECISION_BITS:
        return x
    n = float(2**bits - 1)
    return round_ste(x * n) / n


def symmetric_qmax(bits: int) -> int:
    """Largest integer of the signed symmetric grid with zero: 2^(b-1) - 1 (b=8 -> 127)."""
    if bits < 2:
        raise ValueError(f"symmetric grid with zero needs >= 2 bits, got {bits}")
    return 2 ** (bits - 1) - 1


def _channel_view(scale: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return scale.reshape((-1,) + (1,) * (w.dim() - 1))


def symmetric_scale(
    w: torch.Tensor, bits: int, per_channel: bool = True, method: str = "mse", ratios: int = 24
) -> torch.Tensor:
    """Scale of the symmetric grid for ``w`` (shape [C] if per-channel, else [1] broadcast to [C]).

    Args:
        w: weight, output channels first.
        bits: bit width (>= 2).
        per_channel: one scale per output channel.
        method: "max" (max|w| / qmax) or "mse" (best of ``ratios`` clipping ratios in [0.3, 1]).
    Returns:
        positive scale tensor of shape [C].
    """
    w = w.detach()
    flat = w.reshape(w.shape[0], -1) if per_channel else w.reshape(1, -1)
    qmax = symmetric_qmax(bits)
    amax = flat.abs().amax(dim=1).clamp_min(1e-8)
    if method == "max":
        best = amax / qmax
    elif method == "mse":
        cand = torch.linspace(0.3, 1.0, ratios, device=w.device, dtype=w.dtype)
        scales = amax[None, :] * cand[:, None] / qmax  # R x C
        q = torch.clamp(torch.round(flat[None] / scales[..., None]), -qmax, qmax) * scales[..., None]
        err = (q - flat[None]).pow(2).sum(dim=2)  # R x C
        best = scales.gather(0, err.argmin(dim=0, keepdim=True))[0]
    else:
        raise ValueError(f"unknown scale method {method!r}; use 'max' or 'mse'")
    if not per_channel:
        best = best.expand(w.shape[0])
    return best.clone()


def fake_quant_per_channel(w: torch.Tensor, scale: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """``torch.fake_quantize_per_channel_affine`` along axis 0 with zero points 0."""
    zp = torch.zeros(scale.shape[0], dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale.to(w.dtype), zp, 0, qmin, qmax)


class SymmetricWeightQuantizer(nn.Module):
    """Signed symmetric weight fake-quant with zero; scale buffer recomputed from the weight each call."""

    kind = "symmetric"

    def __init__(self, bits: int, channels: int, per_channel: bool = True, method: str = "mse"):
        super().__init__()
        self.bits, self.per_channel, self.method = int(bits), bool(per_channel), method
        self.export_mode = False
        self.register_buffer("scale", torch.ones(channels))

    def spec(self) -> dict:
        return {"kind": self.kind, "bits": self.bits, "per_channel": self.per_channel, "method": self.method}

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.bits >= FULL_PRECISION_BITS:
            return w
        if self.export_mode:  # weight already on the grid; 8-bit container range for the ONNX symbolic
            return fake_quant_per_channel(w, self.scale, -128, 127)
        with torch.no_grad():
            self.scale.copy_(symmetric_scale(w, self.bits, self.per_channel, self.method))
        q = symmetric_qmax(self.bits)
        return fake_quant_per_channel(w, self.scale, -q, q)

    def grid(self, w: torch.Tensor):
        """Integer grid and per-channel scale of the quantized weight."""
        scale = symmetric_scale(w, self.bits, self.per_channel, self.method)
        q = symmetric_qmax(self.bits)
        ints = torch.clamp(torch.round(w.detach() / _channel_view(scale, w)), -q, q)
        return ints, scale


class DoReFaWeightQuantizer(nn.Module):
    """DoReFa weights: ``t = tanh(W) / max|tanh(W)|`` then a uniform grid on [-1, 1] (per tensor).

    ``zero=True`` (PIC-PQ): ``W_q = round(t * Q) / Q`` with Q = 2^(b-1) - 1, max not detached.
    ``zero=False`` (GHOST): ``u = t / 2 + 1/2``, ``W_q = 2 q_b(u) - 1`` (2^b levels, no zero), max detached.
    """

    def __init__(self, bits: int, channels: int, zero: bool = True):
        super().__init__()
        self.bits, self.zero = int(bits), bool(zero)
        self.export_mode = False
        self.register_buffer("scale", torch.ones(channels))

    @property
    def kind(self) -> str:
        return "dorefa_zero" if self.zero else "dorefa"

    def spec(self) -> dict:
        return {"kind": self.kind, "bits": self.bits}

    def _levels(self) -> int:
        return symmetric_qmax(self.bits) if self.zero else 2**self.bits - 1

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.bits >= FULL_PRECISION_BITS:
            return w
        if self.export_mode:
            return fake_quant_per_channel(w, self.scale, -128, 127)
        t = torch.tanh(w)
        n = float(self._levels())
        if self.zero:
            t = t / t.abs().max()
            return round_ste(t * n) / n
        t = t / (2 * t.abs().max().detach()) + 0.5
        return 2 * quantize_k(t, self.bits) - 1

    def grid(self, w: torch.Tensor):
        n = self._levels()
        t = torch.tanh(w.detach())
        t = t / t.abs().max()
        if self.zero:
            ints = torch.round(t * n)
        else:  # W_q = (2q - n)/n with q = round(u n): odd integers in [-n, n]
            ints = 2 * torch.round((t / 2 + 0.5) * n) - n
        return ints, torch.full((w.shape[0],), 1.0 / n, dtype=w.dtype)


class RangeActQuantizer(nn.Module):
    """Uniform activation fake-quant on [0, clip] (unsigned) or [-clip, clip] (signed).

    ``clip`` is a buffer: 1.0 reproduces DoReFa's ``q_b(clamp(x, 0, 1))``. With ``calibrating = True``
    the forward pass is the identity and records the running maximum of |x| (and whether x < 0 occurs);
    ``finish_calibration()`` then sets ``clip`` and ``signed``.
    """

    kind = "range"

    def __init__(self, bits: int, clip: float = 1.0, signed: bool = False):
        super().__init__()
        self.bits, self.signed = int(bits), bool(signed)
        self.export_mode = False
        self.calibrating = False
        self.register_buffer("clip", torch.tensor(float(clip)))
        self._seen = []

    def spec(self) -> dict:
        return {"kind": self.kind, "bits": self.bits, "signed": self.signed}

    def qrange(self):
        if self.signed:
            q = symmetric_qmax(self.bits)
            return -q, q
        return 0, 2**self.bits - 1

    def scale(self) -> torch.Tensor:
        return self.clip / self.qrange()[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self._seen.append((x.detach().abs().flatten(), bool((x < 0).any())))
            return x
        if self.bits >= FULL_PRECISION_BITS:
            return x
        lo = -self.clip if self.signed else torch.zeros_like(self.clip)
        if self.export_mode:  # explicit Clip: an 8-bit container alone would not clamp at `clip`
            x = torch.clamp(x, lo, self.clip)
            qmin, qmax = (-128, 127) if self.signed else (0, 255)
            return torch.fake_quantize_per_tensor_affine(
                x, self.scale(), torch.zeros((), dtype=torch.int32), qmin, qmax
            )
        qmin, qmax = self.qrange()
        return torch.fake_quantize_per_tensor_affine(
            x, self.scale(), torch.zeros((), dtype=torch.int32), qmin, qmax
        )

    def finish_calibration(self, percentile: float = 99.99) -> None:
        """Set ``clip`` to the given percentile of |x| seen while calibrating (and ``signed``)."""
        self.calibrating = False
        if not self._seen:
            return
        values = torch.cat([v for v, _ in self._seen])
        if values.numel() > 2_000_000:
            values = values[
                torch.randperm(values.numel(), generator=torch.Generator().manual_seed(0))[:2_000_000]
            ]
        self.signed = any(neg for _, neg in self._seen)
        self.clip.fill_(float(torch.quantile(values.float(), percentile / 100.0).clamp_min(1e-6)))
        self._seen = []

    def export_params(self):
        """(scale, qmin, qmax, lo, hi) of the export-mode Clip + QuantizeLinear/DequantizeLinear pair."""
        clip = float(self.clip)
        qmin, qmax = (-128, 127) if self.signed else (0, 255)
        return float(self.scale()), qmin, qmax, (-clip if self.signed else 0.0), clip


WEIGHT_QUANTIZERS = {
    "symmetric": lambda spec, channels: SymmetricWeightQuantizer(
        spec["bits"], channels, spec.get("per_channel", True), spec.get("method", "mse")
    ),
    "dorefa_zero": lambda spec, channels: DoReFaWeightQuantizer(spec["bits"], channels, zero=True),
    "dorefa": lambda spec, channels: DoReFaWeightQuantizer(spec["bits"], channels, zero=False),
}

ACT_QUANTIZERS = {
    "range": lambda spec: RangeActQuantizer(spec["bits"], spec.get("clip", 1.0), spec.get("signed", False)),
}


def _lookup(registry: dict, spec: dict, what: str):
    try:
        return registry[spec["kind"]]
    except KeyError:
        raise ValueError(f"unknown {what} quantizer kind {spec.get('kind')!r}; known: {sorted(registry)}")


def weight_quantizer_from_spec(spec: dict, channels: int) -> nn.Module:
    """Build a weight quantizer from its ``spec()`` dict."""
    return _lookup(WEIGHT_QUANTIZERS, spec, "weight")(spec, channels)


def act_quantizer_from_spec(spec: dict) -> nn.Module:
    """Build an activation quantizer from its ``spec()`` dict."""
    return _lookup(ACT_QUANTIZERS, spec, "activation")(spec)


def dorefa_weight(w: torch.Tensor, bits: int, zero: bool = False) -> torch.Tensor:
    """Functional DoReFa weight quantizer (GHOST: ``zero=False``; PIC-PQ: ``zero=True``)."""
    return DoReFaWeightQuantizer(bits, w.shape[0], zero)(w)


def dorefa_activation(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Functional DoReFa activation quantizer ``q_b(clamp(x, 0, 1))``; zero gradient outside [0, 1]."""
    return RangeActQuantizer(bits, 1.0, False).to(x.device)(x)
