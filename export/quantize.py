"""INT8 for the onnxruntime CPU path: static Q/DQ quantization calibrated on real samples.

Quantization-aware checkpoints (edgefl.compress) already export Q/DQ pairs; ``has_qdq`` tells them
apart so they are not quantized twice.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx

from edgefl.errors import EdgeflError
from edgefl.export.graph_checks import check_opset, ir_version_for_opset, max_opset

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def has_qdq(model: onnx.ModelProto) -> bool:
    """True when the graph already carries QuantizeLinear/DequantizeLinear nodes."""
    return any(node.op_type in QDQ_OPS for node in model.graph.node)


def qdq_summary(model: onnx.ModelProto) -> dict:
    """Counts of Q/DQ nodes and int8 initializers (for the manifest)."""
    counts = {op: sum(1 for n in model.graph.node if n.op_type == op) for op in QDQ_OPS}
    int8 = sum(
        1 for i in model.graph.initializer if i.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    )
    return {
        "quantize_linear": counts["QuantizeLinear"],
        "dequantize_linear": counts["DequantizeLinear"],
        "int8_initializers": int8,
    }


def quantize_static_qdq(
    model: onnx.ModelProto,
    calibration: np.ndarray,
    input_name: str = "input",
    batch: int = 1,
    reduce_range: bool = False,
) -> onnx.ModelProto:
    """Static INT8 quantization: QDQ format, per-channel symmetric int8 weights, uint8 activations (MinMax).

    uint8 activations + int8 weights (U8S8) is onnxruntime's CPU fast path. ``reduce_range`` (7-bit
    weights) avoids the U8S8 saturation of x86 AVX2 CPUs without VNNI; ARM targets don't need it.

    Args:
        model: the fp32 model (already cleaned).
        calibration: normalised real inputs, N×C×H×W float32 (fed ``batch`` at a time).
        input_name: the graph input.
        batch: the model's static batch size.
        reduce_range: 7-bit weights (x86 targets).

    Returns:
        The quantized model at the same opset (checked) and IR version.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if len(calibration) < batch:
        raise EdgeflError(
            f"INT8 calibration needs at least {batch} samples, got {len(calibration)} — add samples"
        )
    opset = max_opset(model)

    class Reader(CalibrationDataReader):
        def __init__(self):
            usable = len(calibration) - len(calibration) % batch
            self._feeds = iter(
                {input_name: np.ascontiguousarray(calibration[i : i + batch], np.float32)}
                for i in range(0, usable, batch)
            )

        def get_next(self):
            return next(self._feeds, None)

    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # onnxruntime.quantization logs pre-processing advice on the root logger
    try:
        with tempfile.TemporaryDirectory(prefix="edgefl-q-") as tmp:
            src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            onnx.save(model, str(src))
            quantize_static(
                str(src),
                str(dst),
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=reduce_range,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"WeightSymmetric": True},
            )
            quantized = onnx.load(str(dst))
    finally:
        quiet.setLevel(level)
    check_opset(quantized, opset, "the INT8 (QDQ) graph")
    quantized.ir_version = min(quantized.ir_version, ir_version_for_opset(opset))
    return quantized
