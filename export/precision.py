"""Precision rules: one pure function from (profile, precision, format) to export settings.

Nothing here is silently downgraded: a combination the target cannot honour is refused with a
message that names what to use instead (the Ultralytics failure mode this avoids: ``int8=True`` on a
TX2 quietly yielding an FP32 engine).
"""

from __future__ import annotations

import dataclasses

from edgefl.errors import EdgeflError

PRECISIONS = ("fp32", "fp16", "int8")
FORMATS = ("onnx", "tensorrt")

# Parity gates per check, project defaults. ``None`` = report, don't gate. FP32 is stricter than torch's
# own exporter check (warns at 5e-3) and looser than Polygraphy's 1e-5 default; FP16 gates on cosine and
# top-1 agreement only, because torch2trt measured FP16 max-abs differences of 6e-3 to 1.6e-1 for
# torchvision CNNs on Jetson Nano/Xavier (its benchmarks/JETSON_*.md); INT8 gates on top-1 agreement.
THRESHOLDS = {
    "fp32": {"max_abs_diff": 1e-4, "min_cosine": None, "min_top1_agreement": 0.999},
    "fp16": {"max_abs_diff": None, "min_cosine": 0.999, "min_top1_agreement": 0.99},
    "int8": {"max_abs_diff": None, "min_cosine": None, "min_top1_agreement": 0.97},
}


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """What the export will do, resolved once and logged once.

    Attributes:
        profile: profile name.
        precision: the requested precision.
        format: "onnx" or "tensorrt".
        opset: ONNX opset to export at (the profile's parser ceiling).
        onnx_precision: what model.onnx computes in: "fp32" or "int8-qdq".
        engine_precision: TensorRT builder precision ("fp32"/"fp16"/"int8"), None for --format onnx.
        runtime: the engine the device runs ("onnxruntime" or "tensorrt").
        calibration: "none", "ort-static-qdq" (host quantizes), or "trt-entropy" (device calibrates).
        parity_checks: precision keys of THRESHOLDS to gate on host (model.onnx vs torch, and
            emulated engine numerics where the engine cannot be run here).
        workspace_mb: TensorRT builder workspace.
        trt_version: the profile's TensorRT line ("" when none).
    """

    profile: str
    precision: str
    format: str
    opset: int
    onnx_precision: str
    engine_precision: str | None
    runtime: str
    calibration: str
    parity_checks: tuple
    workspace_mb: int
    trt_version: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _onnx_fp32(profile, quantized_model: bool) -> dict:
    return dict(
        onnx_precision="fp32",
        engine_precision=None,
        runtime="onnxruntime",
        calibration="none",
        parity_checks=("fp32",),
    )


def _onnx_fp16(profile, quantized_model: bool) -> dict:
    raise EdgeflError(
        "--precision fp16 with --format onnx is not produced: onnxruntime on the device's CPU has no fast "
        "fp16 — use --format tensorrt --precision fp16 (the ONNX stays fp32, the engine builds in fp16 on "
        "the device) or --precision fp32 --format onnx"
    )


def _onnx_int8(profile, quantized_model: bool) -> dict:
    return dict(
        onnx_precision="int8-qdq",
        engine_precision=None,
        runtime="onnxruntime",
        calibration="none" if quantized_model else "ort-static-qdq",
        parity_checks=("int8",),
    )


def _trt_fp32(profile, quantized_model: bool) -> dict:
    return dict(
        onnx_precision="fp32",
        engine_precision="fp32",
        runtime="tensorrt",
        calibration="none",
        parity_checks=("fp32",),
    )


def _trt_fp16(profile, quantized_model: bool) -> dict:
    if not profile.fast_fp16:
        raise EdgeflError(
            f"profile {profile.name} has no fast FP16 in TensorRT — use --precision fp32 --format tensorrt"
        )
    return dict(
        onnx_precision="fp32",
        engine_precision="fp16",
        runtime="tensorrt",
        calibration="none",
        parity_checks=("fp32", "fp16"),
    )


def _trt_int8(profile, quantized_model: bool) -> dict:
    if not profile.fast_int8:
        raise EdgeflError(
            f"--precision int8 with --format tensorrt is refused for {profile.name}: "
            f"its GPU ({profile.sm_arch}) "
            "has no fast INT8 in TensorRT — use --precision fp16 --format tensorrt, or --precision int8 "
            "--format onnx for INT8 on onnxruntime (CPU)"
        )
    if quantized_model:  # explicit quantization: Q/DQ in the ONNX, no calibrator on the device
        return dict(
            onnx_precision="int8-qdq",
            engine_precision="int8",
            runtime="tensorrt",
            calibration="none",
            parity_checks=("int8",),
        )
    if int(profile.tensorrt.split(".")[0]) >= 11:
        raise EdgeflError(
            f"TensorRT {profile.tensorrt} on {profile.name} removed implicit INT8 calibration — "
            "use --precision int8 "
            "--format onnx (Q/DQ) or a quantization-aware checkpoint"
        )
    return dict(
        onnx_precision="fp32",
        engine_precision="int8",
        runtime="tensorrt",
        calibration="trt-entropy",
        parity_checks=("fp32",),
    )


RULES = {
    ("onnx", "fp32"): _onnx_fp32,
    ("onnx", "fp16"): _onnx_fp16,
    ("onnx", "int8"): _onnx_int8,
    ("tensorrt", "fp32"): _trt_fp32,
    ("tensorrt", "fp16"): _trt_fp16,
    ("tensorrt", "int8"): _trt_int8,
}


def resolve_export_settings(
    profile, precision: str, fmt: str, quantized_model: bool = False
) -> ExportSettings:
    """Resolve what an export does for a target, or refuse.

    Args:
        profile: an ``edgefl.export.profiles.Profile``.
        precision: "fp32", "fp16" or "int8".
        fmt: "onnx" or "tensorrt".
        quantized_model: the model carries its own Q/DQ (a quantization-aware checkpoint).

    Returns:
        ExportSettings.

    Raises:
        EdgeflError: unknown precision/format, or a combination the target cannot run.
    """
    if precision not in PRECISIONS:
        raise EdgeflError(f"unknown precision '{precision}' — use one of: {', '.join(PRECISIONS)}")
    if fmt not in FORMATS:
        raise EdgeflError(f"unknown format '{fmt}' — use one of: {', '.join(FORMATS)}")
    if fmt == "tensorrt" and not profile.has_tensorrt:
        raise EdgeflError(f"profile {profile.name} has no TensorRT — use --format onnx (runs on onnxruntime)")
    if quantized_model and precision != "int8":
        raise EdgeflError(
            f"this checkpoint is quantized (it exports Q/DQ pairs), so --precision {precision} cannot hold — "
            "use --precision int8, or export the float checkpoint it came from"
        )
    chosen = RULES[(fmt, precision)](profile, quantized_model)
    return ExportSettings(
        profile=profile.name,
        precision=precision,
        format=fmt,
        opset=profile.max_opset,
        workspace_mb=profile.workspace_mb,
        trt_version=profile.tensorrt,
        **chosen,
    )
