"""Graph clean-up after torch.onnx: constant folding, Identity removal, int32 index weights.

An onnxsim-like pass built on ``onnx.reference`` (no extra dependency): every node whose inputs
are all constants is evaluated once and replaced by initializers. Shape arithmetic that the
TorchScript exporter leaves behind (``F.pad``, ``view``) collapses into plain weights, which is
what the TensorRT 8.x parser wants. Functions here return new ``ModelProto`` objects.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgefl.export.graph_checks import INT32_ALLOWED_INPUTS, INT32_MAX, INT32_MIN

# Ops never folded: random, or with subgraphs/side effects.
_NO_FOLD = {
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "If",
    "Loop",
    "Scan",
    "QuantizeLinear",
    "DequantizeLinear",
}
_MAX_FOLDED_BYTES = 64 * 1024 * 1024


def _constant_value(node: onnx.NodeProto):
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
    return None


def _evaluate(node: onnx.NodeProto, values: dict, opset: int) -> list:
    from onnx.reference import ReferenceEvaluator

    inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(values[n].dtype), values[n].shape)
        for n in node.input
        if n
    ]
    outputs = [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None) for n in node.output]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {n: values[n] for n in node.input if n}
    return ReferenceEvaluator(model).run(None, feeds)


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Evaluate every node whose inputs are all constant and store the results as initializers.

    Args:
        model: an ONNX model (not modified).

    Returns:
        A new model with folded nodes removed, Constant nodes turned into initializers, and unused
        initializers dropped.
    """
    model = _copy(model)
    graph = model.graph
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    graph_inputs = {i.name for i in graph.input}
    kept = []
    for node in graph.node:
        if node.op_type == "Constant" and _constant_value(node) is not None:
            values[node.output[0]] = _constant_value(node)
            continue
        foldable = (
            node.domain in ("", "ai.onnx")
            and node.op_type not in _NO_FOLD
            and all((not n) or (n in values and n not in graph_inputs) for n in node.input)
        )
        if foldable:
            results = _evaluate(node, values, opset)
            if sum(np.asarray(r).nbytes for r in results) <= _MAX_FOLDED_BYTES:
                for name, result in zip(node.output, results):
                    values[name] = np.asarray(result)
                continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    _rebuild_initializers(model, values)
    return remove_identities(model)


def remove_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """Bypass Identity nodes (outputs of the graph keep their names)."""
    model = _copy(model)
    graph = model.graph
    outputs = {o.name for o in graph.output}
    rename = {}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.output[0] not in outputs:
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
            continue
        kept.append(node)
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    # An Identity that produces a graph output from an initializer is turned into that initializer.
    del graph.node[:]
    graph.node.extend(kept)
    return prune_unused(model)


def prune_unused(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop nodes and initializers that no graph output depends on."""
    model = _copy(model)
    graph = model.graph
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(n for n in node.input if n)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    inits = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    infos = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(infos)
    return model


def int32_index_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Convert INT64 index weights to int32 where the op accepts it, clamping INT64 sentinels.

    ``x[:, :, ::2]`` exports Slice ends of INT64_MAX; for every real tensor (< 2**31 elements per
    axis) clamping to INT32_MAX selects the same elements. A weight shared with an int64-only input
    is left alone.
    """
    model = _copy(model)
    graph = model.graph
    uses: dict = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            uses.setdefault(name, []).append(index in INT32_ALLOWED_INPUTS.get(node.op_type, ()))
    for i, init in enumerate(graph.initializer):
        if init.data_type != TensorProto.INT64 or not uses.get(init.name) or not all(uses[init.name]):
            continue
        values = np.clip(numpy_helper.to_array(init), INT32_MIN, INT32_MAX).astype(np.int32)
        graph.initializer[i].CopyFrom(numpy_helper.from_array(values, init.name))
    return model


def clean_for_deployment(model: onnx.ModelProto) -> onnx.ModelProto:
    """The whole clean-up: fold, drop Identity, int32 index weights, then fold again."""
    model = fold_constants(model)
    model = int32_index_weights(model)
    del model.graph.value_info[:]
    return model


def _rebuild_initializers(model: onnx.ModelProto, values: dict) -> None:
    graph = model.graph
    needed = {n for node in graph.node for n in node.input} | {o.name for o in graph.output}
    existing = {init.name: init for init in graph.initializer}
    del graph.initializer[:]
    for name, value in values.items():
        if name not in needed:
            continue
        if name in existing:
            graph.initializer.append(existing[name])
        else:
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
    # A graph output that became a constant needs an Identity-free producer: keep it as initializer.


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    return clone
