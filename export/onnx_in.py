"""An ONNX file as export input: check it, re-target it to the profile's opset, verify it against itself.

read (protobuf + full checker) -> shapes inferred -> one N×C×H×W float input, the first output is the
logits and comes from a linear layer (Gemm or MatMul[+Add]) whose input becomes `features` ->
input/outputs renamed to the bundle's `input`, `logits`, `features` -> retarget plan (pure, in
edgefl.export.retarget) and its application -> graph clean-up -> the shared tail (edgefl.export.assemble),
with parity against the source file run as it is in onnxruntime.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgefl.errors import EdgeflError
from edgefl.export.assemble import BundleParts, Stages, check_out, write_bundle
from edgefl.export.fold import clean_for_deployment
from edgefl.export.graph_checks import ir_version_for_opset, max_opset
from edgefl.export.precision import resolve_export_settings
from edgefl.export.quantize import has_qdq
from edgefl.export.retarget import apply_retarget, op_uses, plan_retarget
from edgefl.export.samples import Samples, read_samples, samples_from_array
from edgefl.export.torch_export import INPUT_NAME, OUTPUT_NAMES
from edgefl.export.verify import onnxruntime_outputs

GENERATED_INPUTS = 64
PASS_THROUGH = ("Identity",)


def is_onnx_input(path) -> bool:
    """`edgefl export X` takes X as an ONNX file when it is a file named *.onnx."""
    return Path(path).suffix.lower() == ".onnx" and not Path(path).is_dir()


def read_onnx(path) -> onnx.ModelProto:
    """Load and fully check an ONNX file; one line naming the problem otherwise."""
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise EdgeflError(f"ONNX file {path} not found — check the path")
    try:
        proto = onnx.load_model_from_string(path.read_bytes())
    except (DecodeError, ValueError, RuntimeError) as exc:
        reason = str(exc).rsplit(": ", 1)[-1].strip()
        raise EdgeflError(
            f"{path.name} is not an ONNX model (truncated or another format: {reason}) — "
            "copy or export it again"
        ) from None
    if not proto.graph.node or not proto.opset_import:
        raise EdgeflError(
            f"{path.name} is not an ONNX model (no graph or opset in it: truncated or another "
            "format) — copy or export it again"
        )
    try:
        onnx.checker.check_model(proto, full_check=True)
        return onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise EdgeflError(
            f"{path.name} fails the ONNX checker ({first}) — fix the model or export it again"
        ) from None


@dataclasses.dataclass(frozen=True)
class GraphIO:
    """The source graph's names: its input, logits and features tensors, and the head found."""

    input: str
    logits: str
    features: str
    input_shape: tuple  # C, H, W
    batch: int | None  # None: symbolic
    weight: np.ndarray
    bias: np.ndarray


def _dims(value_info) -> list:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def _input(proto: onnx.ModelProto, name: str):
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise EdgeflError(
            f"{name} has {len(inputs)} inputs ({[i.name for i in inputs]}); a bundle takes one "
            "image batch N×C×H×W — export a model with one input"
        )
    value = inputs[0]
    dims = _dims(value)
    if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or len(dims) != 4 or None in dims[1:]:
        raise EdgeflError(
            f"{name}'s input {value.name} is {dims} of type "
            f"{onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)}; a bundle takes "
            "float32 N×C×H×W with fixed C, H, W — export it that way"
        )
    return value.name, tuple(dims[1:]), dims[0]


def _linear_head(proto: onnx.ModelProto, logits: str, name: str):
    """(features tensor, weight [C, F], bias [C]) of the linear layer that produces `logits`."""
    producers = {o: n for n in proto.graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    node = producers.get(logits)
    while node is not None and node.op_type in PASS_THROUGH:
        node = producers.get(node.input[0])
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute} if node is not None else {}
    bias = None
    if node is not None and node.op_type == "Add":
        const = [i for i in node.input if i in inits]
        other = [producers.get(i) for i in node.input if i not in inits]
        if len(const) == 1 and other and other[0] is not None and other[0].op_type == "MatMul":
            bias, node = inits[const[0]], other[0]
    if node is not None and node.op_type == "Gemm" and node.input[1] in inits and not attrs.get("transA", 0):
        b = inits[node.input[1]]
        weight = attrs.get("alpha", 1.0) * (b if attrs.get("transB", 0) else b.T)
        c = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if c is not None:  # C broadcasts to [N, classes]: a scalar, [classes] or [1, classes]
            bias = attrs.get("beta", 1.0) * np.broadcast_to(
                c.reshape(-1) if c.size > 1 else c.reshape(()), weight.shape[:1]
            )
    elif node is not None and node.op_type == "MatMul" and node.input[1] in inits:
        weight = inits[node.input[1]].T
    else:
        found = node.op_type if node is not None else "no node"
        raise EdgeflError(
            f"{name}'s output {logits} comes from {found}, not a linear layer (Gemm or MatMul) — "
            "a bundle needs the classifier's linear head for on-device fine-tuning; export the "
            "model so its output is that layer's"
        )
    bias = np.zeros(weight.shape[0], np.float32) if bias is None else np.asarray(bias, np.float32).reshape(-1)
    return node.input[0], np.ascontiguousarray(weight, np.float32), bias


def graph_io(proto: onnx.ModelProto, name: str) -> GraphIO:
    """Find the input, the logits (first output) and the features (the linear head's input)."""
    input_name, input_shape, batch = _input(proto, name)
    logits = proto.graph.output[0].name
    features, weight, bias = _linear_head(proto, logits, name)
    infos = {v.name: v for v in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]}
    rank = len(_dims(infos[features])) if features in infos else None
    if rank != 2 or weight.ndim != 2 or bias.shape != weight.shape[:1]:
        raise EdgeflError(
            f"{name}'s head takes a {rank or 'unknown'}-D input; a bundle needs N×F features "
            "into a 2-D linear layer — flatten before the classifier and export again"
        )
    return GraphIO(input_name, logits, features, input_shape, batch, weight, bias)


def _rename(proto: onnx.ModelProto, mapping: dict) -> None:
    """Rename tensors everywhere in the top-level graph (in place)."""
    graph = proto.graph
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = mapping.get(value.name, value.name)
    for init in graph.initializer:
        init.name = mapping.get(init.name, init.name)


def bundle_graph(proto: onnx.ModelProto, io: GraphIO, batch: int | None) -> onnx.ModelProto:
    """The source graph with the bundle's names (`input`, `logits`, `features`), those two outputs only,
    and the batch dimension fixed to `batch` (None: symbolic "batch")."""
    model = onnx.ModelProto.FromString(proto.SerializeToString())
    wanted = {io.input: INPUT_NAME, io.logits: OUTPUT_NAMES[0], io.features: OUTPUT_NAMES[1]}
    names = {n for node in model.graph.node for n in list(node.input) + list(node.output)}
    names |= {v.name for v in model.graph.input} | {i.name for i in model.graph.initializer}
    clashes = {new: new + "_source" for old, new in wanted.items() if new in names and new not in wanted}
    _rename(model, clashes)
    _rename(model, wanted)
    classes, features = int(io.weight.shape[0]), int(io.weight.shape[1])
    del model.graph.output[:]
    model.graph.output.extend(
        [
            helper.make_tensor_value_info(
                OUTPUT_NAMES[0], onnx.TensorProto.FLOAT, [batch or "batch", classes]
            ),
            helper.make_tensor_value_info(
                OUTPUT_NAMES[1], onnx.TensorProto.FLOAT, [batch or "batch", features]
            ),
        ]
    )
    dim = next(i for i in model.graph.input if i.name == INPUT_NAME).type.tensor_type.shape.dim[0]
    dim.Clear()
    if batch:
        dim.dim_value = batch
    else:
        dim.dim_param = "batch"
    del model.graph.value_info[:]
    return model


def _batch(io: GraphIO, request, name: str):
    """The bundle's batch: the file's fixed batch, or the requested one on a symbolic batch dimension."""
    if io.batch is None:
        return None if request.dynamic_batch else request.batch
    if request.dynamic_batch or request.batch != io.batch:
        asked = "--dynamic-batch" if request.dynamic_batch else f"--batch {request.batch}"
        raise EdgeflError(
            f"{name} has a fixed batch of {io.batch}, so {asked} cannot hold — pass --batch "
            f"{io.batch} or export the model with a symbolic batch dimension"
        )
    return io.batch


def _samples(request, io: GraphIO, name: str, needs_calibration: bool) -> Samples:
    if request.samples is None:
        if needs_calibration:
            raise EdgeflError(
                f"INT8 calibration of {name} needs real inputs — pass --samples FILE.npy "
                f"(N×{'×'.join(map(str, io.input_shape))}, fed to the model as they are)"
            )
        x = np.random.default_rng(0).standard_normal((GENERATED_INPUTS, *io.input_shape)).astype(np.float32)
        return Samples(
            x, x[:0], f"generated: {GENERATED_INPUTS} standard-normal inputs (seed 0), no --samples"
        )
    x = read_samples(request.samples)
    if tuple(x.shape[1:]) != io.input_shape:
        raise EdgeflError(
            f"samples {Path(request.samples).name} are {'×'.join(map(str, x.shape[1:]))} but "
            f"{name} takes {'×'.join(map(str, io.input_shape))} — pass inputs of that shape"
        )
    return samples_from_array(
        x, None, Path(request.samples).name, request.parity_samples, request.calib_samples
    )


def _reference(proto: onnx.ModelProto, io: GraphIO, workdir: Path):
    """The source file as it is (plus its features as an output), run in onnxruntime."""
    model = onnx.ModelProto.FromString(proto.SerializeToString())
    if io.features not in {o.name for o in model.graph.output}:
        model.graph.output.append(next(v for v in model.graph.value_info if v.name == io.features))
    path = workdir / "source.onnx"
    onnx.save(model, str(path))

    def reference(x, half=False):
        out = onnxruntime_outputs(path, x)
        return {OUTPUT_NAMES[0]: out[io.logits], OUTPUT_NAMES[1]: out[io.features]}

    return reference


def bundle_meta(source_path: Path, source_sha256: str) -> tuple:
    """(preprocessing, labels) of the edgefl bundle ``source_path`` sits in — a sealed manifest.json beside
    it that names this very file (same name and sha256) — else (None, None): a file from elsewhere carries
    no preprocessing, and its inputs are fed as they are."""
    from edgefl.runtime.bundle import read_manifest
    from edgefl.runtime.errors import EdgeRuntimeError

    if not (source_path.parent / "manifest.json").is_file():
        return None, None
    try:  # the runtime's reader: format and seal checked; the file's own hash is compared below
        manifest = read_manifest(str(source_path.parent), verify=False)
    except EdgeRuntimeError:
        return None, None
    named = manifest.get("model_file") == source_path.name
    if not named or manifest["files"].get(source_path.name) != source_sha256:
        return None, None
    return manifest.get("preprocessing"), manifest.get("labels")


def given_preprocessing(mean, std, channels: int, name: str):
    """The manifest's preprocessing from --mean/--std (None when neither): one value, or one per channel."""
    if mean is None and std is None:
        return None
    if mean is None or std is None:
        raise EdgeflError(f"pass --mean and --std together (how {name}'s inputs are normalised), or neither")
    for flag, values in (("--mean", mean), ("--std", std)):
        if len(values) not in (1, channels):
            raise EdgeflError(
                f"{flag} has {len(values)} values; {name} takes {channels}-channel inputs — "
                f"pass 1 or {channels}"
            )
    return {"scale": 1 / 255, "mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def export_onnx(request, progress=None):
    """Export an ONNX file (request.checkpoint) for a profile; the same bundle as for a checkpoint.

    Raises:
        EdgeflError: not ONNX / checker failure / no linear head / an op with no form at the profile's
            opset / samples of the wrong shape / parity failure — nothing is written then.
    """
    from edgefl.export.pipeline import ExportResult
    from edgefl.export.profiles import load_profile
    from edgefl.runtime.bundle import sha256_file

    source_path = Path(request.checkpoint)
    name = source_path.name
    given = [
        flag for flag, value in (("--head", request.head), ("--input-shape", request.input_shape)) if value
    ]
    if given:
        raise EdgeflError(
            f"{' and '.join(given)} apply to checkpoints; {name} carries its input shape and its "
            "head is the linear layer that produces its first output — drop them"
        )
    profile = load_profile(request.profile)
    resolve_export_settings(profile, request.precision, request.format)  # refuse before any heavy work
    out = Path(request.out)
    check_out(out)
    source = read_onnx(source_path)  # the file's own problems are reported before any progress is shown
    io = graph_io(source, name)
    declared = given_preprocessing(request.mean, request.std, io.input_shape[0], name)
    batch = _batch(io, request, name)
    settings = resolve_export_settings(profile, request.precision, request.format, has_qdq(source))
    samples = _samples(request, io, name, settings.calibration != "none")

    source_opset = max_opset(source)
    renamed = bundle_graph(source, io, batch)
    plan = plan_retarget(source_opset, profile.max_opset, op_uses(renamed, profile.max_opset), profile.name)

    on_stage = Stages(progress, 5 if settings.calibration == "ort-static-qdq" else 4)
    on_stage(f"opset {source_opset} → {plan.target_opset}")
    proto = clean_for_deployment(apply_retarget(renamed, plan))
    proto.ir_version = min(proto.ir_version, ir_version_for_opset(max_opset(proto)))
    skipped = [c for c in settings.parity_checks if c == "fp16"]
    settings = dataclasses.replace(
        settings, parity_checks=tuple(c for c in settings.parity_checks if c != "fp16")
    )
    source_sha256 = sha256_file(source_path)
    preprocessing, labels = bundle_meta(source_path, source_sha256)
    verification = {
        "source": {
            "file": name,
            "sha256": source_sha256,
            "opset": source_opset,
            "preprocessing": (
                "--mean/--std"
                if declared
                else "its bundle's manifest"
                if preprocessing
                else "none: inputs fed as they are"
            ),
        },
        "retarget": plan.summary(),
        "reference": "the source file as it is, in onnxruntime",
    }
    if skipped:
        verification["fp16"] = (
            "no host emulation for an ONNX input; the device builds and runs the fp16 engine"
        )
    with tempfile.TemporaryDirectory(prefix="edgefl-onnx-in-") as tmp:
        parts = BundleParts(
            proto=proto,
            model=source_path.stem,
            input_shape=io.input_shape,
            head=(io.weight, io.bias),
            reference=_reference(source, io, Path(tmp)),
            against="source ONNX",
            samples=samples,
            quantized_model=has_qdq(source),
            preprocessing=declared or preprocessing,
            labels=labels,
            verification=verification,
        )
        manifest = write_bundle(
            parts,
            settings,
            profile,
            out=out,
            batch=batch or request.batch,
            dynamic_batch=batch is None,
            on_stage=on_stage,
        )
    on_stage.done()
    return ExportResult(bundle_dir=out, manifest=manifest, settings=settings)
