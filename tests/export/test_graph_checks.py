"""Graph clean-up and checks on small hand-built ONNX graphs (run with onnxruntime, not mocked)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgefl.errors import EdgeflError
from edgefl.export.fold import clean_for_deployment, fold_constants
from edgefl.export.graph_checks import (
    check_opset,
    int64_weights,
    ir_version_for_opset,
    max_opset,
    trt8_int64_hazards,
)

INT64_MAX = np.iinfo(np.int64).max


def _slice_pad_model(opset=13):
    """x[:, :, ::2, ::2] then channel zero-pad built from a Constant shape sub-graph (like F.pad exports)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 2, 2])
    inits = [
        numpy_helper.from_array(np.array(v, np.int64), n)
        for n, v in [
            ("starts", [0, 0]),
            ("ends", [INT64_MAX, INT64_MAX]),
            ("axes", [2, 3]),
            ("steps", [2, 2]),
        ]
    ]
    nodes = [
        helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["s"]),
        helper.make_node(
            "Constant", [], ["half"], value=numpy_helper.from_array(np.array([0, 1, 0, 0], np.int64))
        ),
        helper.make_node("Concat", ["half", "half"], ["pads"], axis=0),  # foldable: constant inputs only
        helper.make_node("Identity", ["s"], ["s2"]),
        helper.make_node("Pad", ["s2", "pads"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def _run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]


def test_cleanup_folds_shape_math_and_keeps_results_identical():
    model = _slice_pad_model()
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32)
    cleaned = clean_for_deployment(model)
    ops = [n.op_type for n in cleaned.graph.node]
    assert ops == ["Slice", "Pad"]  # Constant, Concat and Identity are gone
    onnx.checker.check_model(cleaned, full_check=True)
    np.testing.assert_array_equal(_run(cleaned, x), _run(model, x))


def test_slice_indices_become_int32_and_no_trt8_hazards_remain():
    model = _slice_pad_model()
    before = {h["name"] for h in trt8_int64_hazards(model)}
    assert {"starts", "ends", "axes", "steps"} <= before  # int64 where int32 is allowed, INT64_MAX clamped
    cleaned = clean_for_deployment(model)
    assert trt8_int64_hazards(cleaned) == []
    remaining = int64_weights(cleaned)  # only Pad's pads, which the ONNX spec pins to int64, in range
    assert [w["consumers"] for w in remaining] == [[("Pad", 1)]] and remaining[0]["in_int32_range"]
    ends = next(i for i in cleaned.graph.initializer if i.name == "ends")
    assert ends.data_type == TensorProto.INT32 and numpy_helper.to_array(ends).max() == np.iinfo(np.int32).max


def test_out_of_range_int64_on_int64_only_input_is_a_hazard():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    shape = numpy_helper.from_array(np.array([1, 2**40], np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g", [x], [y], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert [h["name"] for h in trt8_int64_hazards(model)] == ["shape"]


def test_opset_ceiling_is_enforced():
    model = _slice_pad_model(opset=18)
    assert max_opset(model) == 18
    with pytest.raises(EdgeflError, match="opset 18 but .* at most 13"):
        check_opset(model, 13)
    assert check_opset(model, 20) == 18


def test_ir_version_follows_the_opset():
    assert ir_version_for_opset(13) == 7  # ONNX 1.8: the TensorRT 8.2 parser; onnxruntime 1.10 reads IR <= 8
    assert ir_version_for_opset(17) == 8
    assert ir_version_for_opset(20) == 9


def test_fold_leaves_graph_inputs_alone():
    model = _slice_pad_model()
    folded = fold_constants(model)
    assert any(n.op_type == "Slice" and n.input[0] == "x" for n in folded.graph.node)
