"""Pure checks on an ONNX graph: opset ceiling, IR version, INT64 weights that TensorRT 8.x casts.

Every function takes an ``onnx.ModelProto`` and returns data or raises ``EdgeflError``;
none of them writes files.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from edgefl.errors import EdgeflError

INT32_MIN = int(np.iinfo(np.int32).min)
INT32_MAX = int(np.iinfo(np.int32).max)

# Inputs whose ONNX spec accepts int32 as well as int64 (op_type -> input indices).
# TensorRT <= 8.x has no INT64 and casts such weights down; giving it int32 up front
# (with INT64_MAX sentinels clamped) removes the cast and its clamping warnings.
INT32_ALLOWED_INPUTS = {
    "Slice": (1, 2, 3, 4),
    "Gather": (1,),
    "GatherElements": (1,),
    "ScatterElements": (1,),
    "OneHot": (0,),
}

# Inputs the ONNX spec pins to int64 (op_type -> input indices). TensorRT 8.2 casts these to
# int32 with a warning; that is safe exactly when every value fits in int32.
INT64_REQUIRED_INPUTS = {
    "Reshape": (1,),
    "Pad": (1,),
    "Unsqueeze": (1,),
    "Squeeze": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "ConstantOfShape": (0,),
    "ReduceSum": (1,),
    "Resize": (3,),
}


def max_opset(model: onnx.ModelProto) -> int:
    """Highest default-domain opset the model imports."""
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise EdgeflError("the ONNX model imports no default-domain opset — re-export it")
    return max(versions)


def check_opset(model: onnx.ModelProto, ceiling: int, what: str = "model.onnx") -> int:
    """Return the model's opset; raise when it exceeds ``ceiling`` (the profile's parser limit).

    Args:
        model: the ONNX model as written (or about to be written).
        ceiling: the profile's ``max_opset``.
        what: file name used in the message.
    """
    opset = max_opset(model)
    if opset > ceiling:
        raise EdgeflError(
            "{} uses ONNX opset {} but the target's TensorRT parser accepts at most {} — "
            "export with the TorchScript exporter (dynamo=False) at opset {}".format(
                what, opset, ceiling, ceiling
            )
        )
    foreign = sorted({o.domain for o in model.opset_import if o.domain not in ("", "ai.onnx")})
    if foreign:
        raise EdgeflError(
            "{} imports non-standard operator domains {} that TensorRT cannot parse — "
            "export without runtime-specific fusions".format(what, foreign)
        )
    return opset


def ir_version_for_opset(opset: int) -> int:
    """Lowest IR version that carries ``opset`` (keeps files readable by old parsers/runtimes).

    onnx's release table maps (release, ir, opset); e.g. opset 13 -> IR 7 (ONNX 1.8, TRT 8.2 parser,
    onnxruntime 1.10 reads IR <= 8).
    """
    candidates = [ir for (_rel, ir, op, *_rest) in onnx.helper.VERSION_TABLE if op >= opset]
    if not candidates:
        raise EdgeflError("opset {} is newer than this onnx package knows — upgrade onnx".format(opset))
    return min(candidates)


def _consumers(model: onnx.ModelProto) -> dict:
    uses: dict = {}
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            uses.setdefault(name, []).append((node.op_type, index))
    return uses


def int64_weights(model: onnx.ModelProto) -> list:
    """All INT64 initializers as dicts: name, values-in-int32-range, and the (op, input) consumers."""
    uses = _consumers(model)
    found = []
    for init in model.graph.initializer:
        if init.data_type != TensorProto.INT64:
            continue
        values = numpy_helper.to_array(init)
        in_range = bool(values.size == 0 or (values.min() >= INT32_MIN and values.max() <= INT32_MAX))
        found.append({"name": init.name, "in_int32_range": in_range, "consumers": uses.get(init.name, [])})
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.INT64:
                    found.append(
                        {"name": node.output[0], "in_int32_range": False, "consumers": [("Constant", -1)]}
                    )
    return found


def trt8_int64_hazards(model: onnx.ModelProto) -> list:
    """INT64 weights TensorRT 8.2 would have to clamp or that could have been int32.

    A weight is a hazard when its values leave the int32 range (TRT clamps them), when it feeds an
    input that accepts int32 (it should have been converted), or when it is an unfolded Constant node.
    In-range weights on int64-only inputs (Reshape shape, Pad pads) are cast exactly and are not hazards.
    """
    hazards = []
    for weight in int64_weights(model):
        only_required = all(index in INT64_REQUIRED_INPUTS.get(op, ()) for op, index in weight["consumers"])
        if not weight["in_int32_range"] or not only_required:
            hazards.append(weight)
    return hazards


def check_no_trt8_int64_hazards(model: onnx.ModelProto) -> None:
    """Raise when :func:`trt8_int64_hazards` finds anything."""
    hazards = trt8_int64_hazards(model)
    if hazards:
        names = ", ".join(h["name"] for h in hazards[:5])
        raise EdgeflError(
            "the ONNX graph keeps {} INT64 weight(s) TensorRT 8.2 would clamp ({}) — "
            "report this model to the export owner; export for a TensorRT 10 profile meanwhile".format(
                len(hazards), names
            )
        )


def check_model_full(model_path) -> None:
    """``onnx.checker`` with ``full_check`` (runs strict shape inference) on a written file."""
    try:
        onnx.checker.check_model(str(model_path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeflError(
            "{} fails onnx.checker (full check): {} — re-export the model".format(model_path, first)
        ) from exc
