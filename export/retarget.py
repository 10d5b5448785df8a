"""Re-target an ONNX graph to a lower opset: one pure decision (`plan_retarget`), then its application.

Going down from the opset a file was exported at to the profile's ceiling, every node falls in one of
four cases, decided per node from the ONNX schemas (never from the op's name alone):

- same: its schema did not change between the two opsets;
- relabel: the newer versions only widened types, or added an attribute/optional input the node does
  not use, so the node means the same at the lower opset (the full checker then checks its types);
- convert: the signature changed (e.g. ReduceMean's axes became an input at 18) — onnx's version
  converter rewrites that one node (it has no adapters for the type-only changes above, so it is
  never run on the whole graph);
- rewrite: the op does not exist at the target (HardSwish is opset 14, a TX2's parser stops at 13):
  an equivalent made of older ops, from REWRITES; an op with no rewrite is refused in one line.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgefl.errors import EdgeflError

DEFAULT_DOMAINS = ("", "ai.onnx")
# Attributes added by a newer op version whose default reproduces the older version's behaviour.
# (RoiAlign's coordinate_transformation_mode is not here: its default changed the result.)
NEUTRAL_NEW_ATTRIBUTES = {
    "allowzero": 0,
    "start": None,
    "end": None,
    "num_outputs": None,
    "dilations": None,
    "saturate": None,
    "antialias": 0,
    "axes": None,
    "keep_aspect_ratio_policy": "stretch",
    "reduction": "none",
    "block_size": None,
    "output_dtype": None,
    "round_mode": None,
    "precision": None,
    "noop_with_empty_axes": 0,
    "training_mode": 0,
}


@dataclasses.dataclass(frozen=True)
class OpUse:
    """One node as the plan sees it.

    Attributes:
        op_type, domain, name: the node's.
        source_version: since_version of its schema at the file's opset.
        target_version: since_version at the target opset, None when the op does not exist there.
        changes: ((since_version, kinds), ...) for each schema version above the target's, where
            kinds ⊆ {"types", "attrs+NAME", "attrs-NAME", "defaults", "inputs", "outputs"}.
        attrs: attribute name → value as set on the node.
        inputs, outputs: how many the node uses.
    """

    op_type: str
    domain: str
    name: str
    source_version: int | None
    target_version: int | None
    changes: tuple = ()
    attrs: dict = dataclasses.field(default_factory=dict)
    inputs: int = 1
    outputs: int = 1


@dataclasses.dataclass(frozen=True)
class RetargetPlan:
    """What `apply_retarget` does; `summary()` goes into the bundle manifest."""

    source_opset: int
    target_opset: int
    relabel: tuple = ()  # op types whose nodes keep their form
    convert: tuple = ()  # node names the version converter rewrites, one by one
    rewrite: tuple = ()  # node names replaced by REWRITES[op_type]
    ops: dict = dataclasses.field(default_factory=dict)  # node name → op type (for convert/rewrite)

    @property
    def changes_anything(self) -> bool:
        return self.source_opset > self.target_opset

    def summary(self) -> dict:
        def counts(names):
            out: dict = {}
            for n in names:
                out[self.ops[n]] = out.get(self.ops[n], 0) + 1
            return dict(sorted(out.items()))

        return {
            "from_opset": self.source_opset,
            "to_opset": self.target_opset,
            "relabelled_ops": sorted(self.relabel),
            "converted": counts(self.convert),
            "rewritten": counts(self.rewrite),
        }


def _hardswish(node, fresh):
    """HardSwish(x) = x · HardSigmoid(x; alpha=1/6, beta=1/2) (ONNX's own definition, opset 14)."""
    gate = fresh("hardsigmoid")
    return [
        helper.make_node("HardSigmoid", [node.input[0]], [gate], alpha=1.0 / 6.0, beta=0.5, name=gate),
        helper.make_node("Mul", [node.input[0], gate], list(node.output), name=fresh("mul")),
    ], []


def _mish(node, fresh):
    """Mish(x) = x · tanh(softplus(x)) (opset 18)."""
    soft, tanh = fresh("softplus"), fresh("tanh")
    return [
        helper.make_node("Softplus", [node.input[0]], [soft], name=soft),
        helper.make_node("Tanh", [soft], [tanh], name=tanh),
        helper.make_node("Mul", [node.input[0], tanh], list(node.output), name=fresh("mul")),
    ], []


def _gelu(node, fresh):
    """Gelu(x) (opset 20) = 0.5·x·(1 + erf(x/√2)).

    With approximate="tanh": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    """
    nodes, consts = [], []

    def op(op_type, *inputs, out=None):
        out = out or fresh("gelu")
        nodes.append(helper.make_node(op_type, list(inputs), [out], name=fresh(op_type.lower())))
        return out

    def const(value):
        consts.append(numpy_helper.from_array(np.array(value, np.float32), fresh("const")))
        return consts[-1].name

    x = node.input[0]
    if _attr(node, "approximate", "none") == "tanh":
        cubic = op("Mul", op("Mul", op("Mul", x, x), x), const(0.044715))
        inner = op("Tanh", op("Mul", op("Add", x, cubic), const(math.sqrt(2.0 / math.pi))))
    else:
        inner = op("Erf", op("Div", x, const(math.sqrt(2.0))))
    op("Mul", op("Mul", x, op("Add", inner, const(1.0))), const(0.5), out=node.output[0])
    return nodes, consts


# op type → (opset that introduced it, builder(node, fresh) -> (nodes, initializers)); the nodes use
# opset-13 ops only
REWRITES = {
    "HardSwish": (14, _hardswish),
    "Mish": (18, _mish),
    "Gelu": (20, _gelu),
}


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _keeps_meaning(use: OpUse) -> bool:
    """True when every schema change above the target leaves this node's meaning as it is."""
    for _version, kinds in use.changes:
        for kind in kinds:
            if kind == "types":
                continue
            if kind.startswith("attrs+"):
                name = kind[len("attrs+") :]
                neutral = name in NEUTRAL_NEW_ATTRIBUTES
                if neutral and use.attrs.get(name) in (NEUTRAL_NEW_ATTRIBUTES[name], None):
                    continue
                return False
            if (
                kind == "inputs" and use.op_type == "Pad" and use.inputs <= 3
            ):  # 18 added an optional axes input
                continue
            if kind in ("inputs", "outputs") and use.op_type == "BatchNormalization":  # 14: training outputs
                if use.outputs == 1 and use.attrs.get("training_mode", 0) == 0:
                    continue
            return False
    return True


def plan_retarget(source_opset: int, target_opset: int, uses, profile: str) -> RetargetPlan:
    """Decide how to bring a graph from `source_opset` down to `target_opset`, or refuse.

    Args:
        source_opset: the file's default-domain opset.
        target_opset: the profile's ceiling.
        uses: OpUse per node (see `op_uses`).
        profile: profile name, for messages.

    Returns:
        RetargetPlan (nothing to do when source ≤ target).

    Raises:
        EdgeflError: a non-standard op, or an op newer than the target with no rewrite.
    """
    uses = list(uses)
    for use in uses:
        if use.domain not in DEFAULT_DOMAINS:
            raise EdgeflError(
                f"node {use.name} is {use.domain}.{use.op_type}, not a standard ONNX op — {profile}'s "
                "TensorRT cannot parse it; export the model without runtime-specific operators"
            )
    if source_opset <= target_opset:
        return RetargetPlan(source_opset, source_opset)
    relabel, convert, rewrite, ops = set(), [], [], {}
    for use in uses:
        if use.target_version is None:
            if use.op_type not in REWRITES:
                raise EdgeflError(
                    f"op {use.op_type} (ONNX opset {use.source_version}) has no form at opset "
                    f"{target_opset}, the most {profile} accepts, and edgefl has no rewrite for it — "
                    f"re-export the model at opset {target_opset} or replace {use.op_type} with older ops"
                )
            rewrite.append(use.name)
            ops[use.name] = use.op_type
        elif use.source_version == use.target_version:
            continue
        elif _keeps_meaning(use):
            relabel.add(use.op_type)
        else:
            convert.append(use.name)
            ops[use.name] = use.op_type
    return RetargetPlan(
        source_opset, target_opset, tuple(sorted(relabel)), tuple(convert), tuple(rewrite), ops
    )


# -- the I/O shell: schemas in, ModelProto out ------------------------------------------------------------


def _signature(schema) -> tuple:
    attrs = {
        n: (a.default_value.SerializeToString() if a.default_value else None)
        for n, a in schema.attributes.items()
    }
    inputs = [(p.name, int(p.option)) for p in schema.inputs]
    outputs = [(p.name, int(p.option)) for p in schema.outputs]
    return attrs, inputs, outputs


@functools.lru_cache(maxsize=None)
def _histories() -> dict:
    out: dict = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain == "":
            out.setdefault(schema.name, []).append(schema)
    return {name: sorted(v, key=lambda s: s.since_version) for name, v in out.items()}


def schema_changes(op_type: str, target_version: int, source_version: int) -> tuple:
    """((since_version, kinds), ...) for each version of `op_type` in (target_version, source_version]."""
    history = _histories().get(op_type, [])
    rows = []
    for old, new in zip(history, history[1:]):
        if not target_version < new.since_version <= source_version:
            continue
        (a_old, i_old, o_old), (a_new, i_new, o_new) = _signature(old), _signature(new)
        kinds = [f"attrs+{n}" for n in sorted(set(a_new) - set(a_old))]
        kinds += [f"attrs-{n}" for n in sorted(set(a_old) - set(a_new))]
        if any(a_old[k] != a_new[k] for k in set(a_old) & set(a_new)):
            kinds.append("defaults")
        kinds += [k for k, o, n in (("inputs", i_old, i_new), ("outputs", o_old, o_new)) if o != n]
        rows.append((new.since_version, tuple(kinds) or ("types",)))
    return tuple(rows)


def _since(op_type: str, opset: int):
    try:
        return onnx.defs.get_schema(op_type, opset, "").since_version
    except onnx.defs.SchemaError:
        return None


def op_uses(model: onnx.ModelProto, target_opset: int) -> list:
    """OpUse for every top-level node of `model`, with schema versions at its opset and at the target."""
    from edgefl.export.graph_checks import max_opset

    source = max_opset(model)
    uses = []
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        attrs = {a.name: _attr(node, a.name) for a in node.attribute}
        if node.domain not in DEFAULT_DOMAINS:
            uses.append(OpUse(node.op_type, node.domain, name, None, None, (), attrs))
            continue
        src, dst = _since(node.op_type, source), _since(node.op_type, target_opset)
        changes = schema_changes(node.op_type, dst, src) if src and dst and src > dst else ()
        uses.append(
            OpUse(
                node.op_type,
                node.domain,
                name,
                src,
                dst,
                changes,
                attrs,
                len([n for n in node.input if n]),
                len([n for n in node.output if n]),
            )
        )
    return uses


def _named(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have unique names (the plan refers to nodes by name)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    seen = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    return model


def _convert_node(model: onnx.ModelProto, node, source_opset: int, target_opset: int):
    """Run onnx's version converter on a one-node model holding `node`; returns (nodes, initializers)."""
    from onnx import version_converter

    inits = {i.name: i for i in model.graph.initializer}
    infos = {
        v.name: v for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    }
    inputs = [
        infos.get(n) or helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
        for n in node.input
        if n and n not in inits
    ]
    outputs = [
        infos.get(n) or helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in node.output
    ]
    graph = helper.make_graph([node], "one", inputs, outputs, [inits[n] for n in node.input if n in inits])
    single = helper.make_model(graph, opset_imports=[helper.make_opsetid("", source_opset)])
    try:
        converted = version_converter.convert_version(single, target_opset)
    except (RuntimeError, onnx.checker.ValidationError) as exc:
        reason = str(exc).strip().splitlines()[-1].split("failed: ")[-1]
        raise EdgeflError(
            f"op {node.op_type} (node {node.name}) cannot be brought to opset {target_opset}: onnx's version "
            f"converter says '{reason}' — re-export the model at opset {target_opset}"
        ) from None
    return list(converted.graph.node), list(converted.graph.initializer)


def apply_retarget(model: onnx.ModelProto, plan: RetargetPlan) -> onnx.ModelProto:
    """The model at `plan.target_opset` (a new ModelProto; shapes inferred so converted nodes know types)."""
    from edgefl.export.graph_checks import ir_version_for_opset

    if not plan.changes_anything:
        return model
    model = _named(onnx.shape_inference.infer_shapes(model))
    counter = iter(range(1 << 30))

    def fresh(stem):
        return f"retarget_{stem}_{next(counter)}"

    converted, added = [], []
    for node in model.graph.node:
        if node.name in plan.rewrite:
            nodes, inits = REWRITES[node.op_type][1](node, fresh)
        elif node.name in plan.convert:
            nodes, inits = _convert_node(model, node, plan.source_opset, plan.target_opset)
        else:
            nodes, inits = [node], []
        converted.extend(nodes)
        added.extend(i for i in inits if i.name not in {x.name for x in model.graph.initializer})
    del model.graph.node[:]
    model.graph.node.extend(converted)
    model.graph.initializer.extend(added)
    del model.graph.value_info[:]  # stale after rewrites; inferred again by whoever needs them
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            entry.version = plan.target_opset
    model.ir_version = min(model.ir_version, ir_version_for_opset(plan.target_opset))
    return model
