"""The opset retarget plan (pure, on hand-made OpUse rows) and each rewrite's numbers in onnxruntime."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgefl.errors import EdgeflError
from edgefl.export.retarget import OpUse, apply_retarget, op_uses, plan_retarget, schema_changes


def use(op, src, dst, changes=(), name=None, **kw):
    return OpUse(op, "", name or op.lower(), src, dst, tuple(changes), **kw)


def test_nothing_to_do_at_or_below_the_target():
    plan = plan_retarget(11, 13, [use("HardSwish", None, None)], "jetson-tx2")
    assert not plan.changes_anything and plan.summary()["rewritten"] == {}


def test_an_op_newer_than_the_target_is_rewritten_or_refused_in_one_line():
    plan = plan_retarget(17, 13, [use("HardSwish", 14, None, name="hs1"), use("Conv", 11, 11)], "jetson-tx2")
    assert plan.rewrite == ("hs1",) and plan.summary()["rewritten"] == {"HardSwish": 1}
    with pytest.raises(EdgeflError) as refused:
        plan_retarget(17, 13, [use("LayerNormalization", 17, None)], "jetson-tx2")
    message = str(refused.value)
    assert (
        "op LayerNormalization (ONNX opset 17)" in message
        and "opset 13, the most jetson-tx2 accepts" in message
    )
    assert "\n" not in message


def test_non_standard_domains_are_refused():
    with pytest.raises(EdgeflError, match="com.microsoft.FusedConv, not a standard ONNX op"):
        plan_retarget(17, 13, [OpUse("FusedConv", "com.microsoft", "f", None, None)], "jetson-tx2")


@pytest.mark.parametrize(
    "row,expected",
    [
        (use("Add", 14, 13, [(14, ("types",))]), "relabel"),
        (use("Reshape", 14, 13, [(14, ("attrs+allowzero",))]), "relabel"),
        (use("Reshape", 14, 13, [(14, ("attrs+allowzero",))], attrs={"allowzero": 1}), "convert"),
        (use("Pad", 18, 13, [(18, ("inputs",))], inputs=3), "relabel"),
        (use("Pad", 18, 13, [(18, ("inputs",))], inputs=4), "convert"),  # uses the axes input of opset 18
        (
            use(
                "BatchNormalization",
                15,
                9,
                [(14, ("attrs+training_mode", "inputs", "outputs")), (15, ("types",))],
            ),
            "relabel",
        ),
        (use("BatchNormalization", 15, 9, [(14, ("attrs+training_mode", "outputs"))], outputs=3), "convert"),
        (
            use("RoiAlign", 16, 10, [(16, ("attrs+coordinate_transformation_mode",))]),
            "convert",
        ),  # default changed
        (
            use("ReduceMean", 18, 13, [(18, ("attrs+noop_with_empty_axes", "attrs-axes", "inputs"))]),
            "convert",
        ),
    ],
)
def test_changed_ops_are_relabelled_only_when_their_meaning_holds(row, expected):
    plan = plan_retarget(18, 13, [row], "jetson-tx2")
    assert (row.op_type in plan.relabel, row.name in plan.convert) == (
        expected == "relabel",
        expected == "convert",
    )


def test_schema_changes_read_from_onnx():
    assert schema_changes("Add", 13, 17) == ((14, ("types",)),)
    assert schema_changes("Conv", 11, 17) == ()
    ((version, kinds),) = schema_changes("ReduceMean", 13, 18)
    assert version == 18 and "attrs-axes" in kinds and "inputs" in kinds


def single_op_model(op, opset, attrs=None, inits=()):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node(op, ["x"] + [i.name for i in inits], ["y"], name="n0", **(attrs or {}))
    graph = helper.make_graph([node], "g", [x], [y], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]


@pytest.mark.parametrize(
    "op,opset,attrs,inits",
    [
        ("HardSwish", 17, None, ()),
        ("Mish", 18, None, ()),
        ("Gelu", 20, None, ()),
        ("Gelu", 20, {"approximate": "tanh"}, ()),
        ("ReduceMean", 18, {"keepdims": 1}, (numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),)),
    ],
)
def test_retargeted_graph_computes_the_same_at_opset_13(op, opset, attrs, inits):
    model = single_op_model(op, opset, attrs, inits)
    plan = plan_retarget(opset, 13, op_uses(model, 13), "jetson-tx2")
    low = apply_retarget(model, plan)
    onnx.checker.check_model(low, full_check=True)
    assert [o.version for o in low.opset_import] == [13] and op not in {n.op_type for n in low.graph.node} - {
        "ReduceMean"
    }
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32) * 4
    np.testing.assert_allclose(run(low, x), run(model, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("form", ["gemm", "gemm-2d-bias", "matmul-add"])
def test_the_linear_head_of_an_onnx_graph_is_found(form):
    from edgefl.export.onnx_in import graph_io

    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3)).astype(np.float32)  # features 6 -> classes 3, stored as x @ w
    b = rng.standard_normal(3).astype(np.float32)
    x = helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 1, 2, 3])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])
    flat = helper.make_node("Flatten", ["img"], ["feat"])
    if form == "matmul-add":
        head = [
            helper.make_node("MatMul", ["feat", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["out"]),
        ]
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    else:
        bias = b.reshape(1, 3) if form == "gemm-2d-bias" else b
        head = [helper.make_node("Gemm", ["feat", "w", "b"], ["out"], alpha=2.0, beta=0.5)]
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")]
    model = helper.make_model(
        helper.make_graph([flat, *head], "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 13)]
    )
    model = onnx.shape_inference.infer_shapes(model)
    io = graph_io(model, "m.onnx")
    scale, shift = (1.0, 1.0) if form == "matmul-add" else (2.0, 0.5)
    assert (io.input, io.logits, io.features, io.input_shape, io.batch) == (
        "img",
        "out",
        "feat",
        (1, 2, 3),
        None,
    )
    np.testing.assert_allclose(io.weight, scale * w.T)
    np.testing.assert_allclose(io.bias, shift * b)
    feats = rng.standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(
        feats @ io.weight.T + io.bias, run_feats(model, feats.reshape(4, 1, 2, 3)), rtol=1e-5, atol=1e-5
    )


def run_feats(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"img": x}
    )[0]
