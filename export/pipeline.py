"""`edgefl export` as one library call: a checkpoint (or any nn.Module) -> verified bundle directory.

Stages: resolve settings -> load checkpoint -> torch -> ONNX (opset of the profile) -> the shared
tail in edgefl.export.assemble ([INT8 Q/DQ] -> checks -> full checker -> parity oracle -> head +
calibration -> TensorRT engine or on-device build plan -> manifest). ONNX files enter through
edgefl.export.onnx_in. The bundle is assembled in a staging directory and moved into place only when
every check passed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgefl.errors import EdgeflError
from edgefl.export.assemble import BundleParts, Stages, check_out, write_bundle
from edgefl.export.precision import ExportSettings, resolve_export_settings
from edgefl.export.quantize import has_qdq
from edgefl.export.samples import load_samples, samples_from_array
from edgefl.export.torch_export import add_metadata, export_metadata, onnx_from_module, prepare_for_export
from edgefl.export.verify import check_finite_weights, torch_reference


@dataclasses.dataclass
class ExportRequest:
    """Everything `edgefl export` was asked for (CLI flags, validated here)."""

    checkpoint: Path
    profile: str
    precision: str
    format: str
    out: Path
    batch: int = 1
    dynamic_batch: bool = False
    input_shape: tuple | None = None
    samples: Path | None = None
    parity_samples: int = 2000
    calib_samples: int = 256
    head: str | None = None
    mean: tuple | None = None  # an ONNX input's normalisation (with std): its manifest's preprocessing
    std: tuple | None = None


@dataclasses.dataclass
class ExportResult:
    bundle_dir: Path
    manifest: dict
    settings: ExportSettings


def export_checkpoint(request: ExportRequest, progress=None) -> ExportResult:
    """Export a checkpoint to a verified bundle directory.

    Args:
        request: what to export, for which profile, where.
        progress: an ``edgefl.progress`` object (RichProgress / NullProgress) or None.

    Returns:
        ExportResult with the bundle path, the manifest as written and the resolved settings.

    Raises:
        EdgeflError: refused precision/format, opset above the profile's ceiling, checker or parity failure.
    """
    from edgefl.checkpoint import load_checkpoint

    if request.mean is not None or request.std is not None:
        raise EdgeflError(
            "--mean/--std describe an ONNX file's inputs; a checkpoint carries its own "
            "preprocessing — drop them"
        )
    profile, on_stage = _start(request, progress)
    checkpoint = load_checkpoint(request.checkpoint)
    check_finite_weights(checkpoint.model, request.checkpoint)
    config = checkpoint.config
    input_shape = tuple(request.input_shape or config["input_shape"])
    if len(input_shape) != 3:
        raise EdgeflError(f"input shape {input_shape} is not C,H,W — pass --input-shape C,H,W")

    samples = load_samples(
        config, input_shape, request.samples, request.parity_samples, request.calib_samples
    )

    meta = {
        "model": config["model"],
        "preprocessing": config.get("preprocessing"),
        "labels": config.get("labels"),
        "compression": config.get("compression"),
    }
    return _export_torch(checkpoint.model, input_shape, samples, meta, request, profile, on_stage)


def export_module(
    model,
    samples,
    *,
    profile: str,
    out,
    precision: str = "fp32",
    format: str = "onnx",
    batch: int = 1,
    dynamic_batch: bool = False,
    head: str | None = None,
    preprocessing: dict | None = None,
    labels: list | None = None,
    name: str | None = None,
    progress=None,
) -> ExportResult:
    """Export any nn.Module with sample inputs: the same verification and bundle as `edgefl export`.

    Args:
        model: a classifier; its head is ``head`` or its last nn.Linear (features = the head's input).
        samples: N×C×H×W float array (N ≥ 2): the first half checks parity, the second calibrates INT8.
            Normalised with ``preprocessing`` first when given (then the device normalises the same way).
        profile: device profile name or TOML path, e.g. "jetson-tx2".
        out: bundle directory to write.
        precision, format, batch, dynamic_batch: as for `edgefl export`.
        preprocessing, labels, name: recorded in the manifest (name defaults to the model's class).

    Returns:
        ExportResult (bundle_dir, manifest, settings).

    Example:
        >>> from edgefl.export import export_module
        >>> export_module(net, x[:128], profile="jetson-tx2", out="runs/bundle")  # doctest: +SKIP
    """
    request = ExportRequest(
        checkpoint=None,
        profile=profile,
        precision=precision,
        format=format,
        out=Path(out),
        batch=batch,
        dynamic_batch=dynamic_batch,
        head=head,
    )
    profile_obj, on_stage = _start(request, progress)
    x = np.asarray(samples, np.float32)
    if x.ndim != 4 or len(x) < 2:
        raise EdgeflError(
            f"samples have shape {x.shape}; expected N×C×H×W with N ≥ 2 — pass a batch of inputs"
        )
    meta = {
        "model": name or type(model).__name__,
        "preprocessing": preprocessing,
        "labels": labels,
        "compression": None,
    }
    return _export_torch(
        model,
        tuple(x.shape[1:]),
        samples_from_array(x, preprocessing, "samples given"),
        meta,
        request,
        profile_obj,
        on_stage,
    )


def _start(request: ExportRequest, progress):
    """Refuse what can be refused before any heavy work; returns (profile, a maker of the stage reporter).

    The progress display starts only once the inputs are loaded, so a refusal is one line on stderr.
    """
    from edgefl.export.profiles import load_profile

    if request.batch < 1:
        raise EdgeflError(f"--batch must be ≥ 1, got {request.batch}")
    profile = load_profile(request.profile)
    resolve_export_settings(profile, request.precision, request.format)
    check_out(Path(request.out))
    stages = 5 if (request.precision, request.format) == ("int8", "onnx") else 4
    return profile, lambda: Stages(progress, stages)


def _export_torch(
    trained, input_shape, samples, meta: dict, request: ExportRequest, profile, on_stage
) -> ExportResult:
    """torch model -> ONNX at the profile's opset -> the shared tail; parity against `trained` as it is."""
    import torch

    from edgefl.models.head import find_head

    on_stage = on_stage()
    torch.set_num_threads(1)
    trained = trained.eval()  # parity is judged against the model as trained
    model = prepare_for_export(trained).eval()
    on_stage(f"torch → ONNX (opset {profile.max_opset})")
    proto = onnx_from_module(
        model, input_shape, profile.max_opset, request.batch, request.dynamic_batch, request.head
    )
    add_metadata(proto, export_metadata(model))
    quantized_model = has_qdq(proto)
    settings = resolve_export_settings(profile, request.precision, request.format, quantized_model)
    _name, head = find_head(model, request.head)
    weight = head.weight.detach().float().numpy()
    bias = (
        head.bias.detach().float().numpy() if head.bias is not None else np.zeros(weight.shape[0], np.float32)
    )
    parts = BundleParts(
        proto=proto,
        model=meta["model"],
        input_shape=tuple(input_shape),
        head=(weight, bias),
        reference=torch_reference(trained, request.head),
        against="torch",
        samples=samples,
        quantized_model=quantized_model,
        preprocessing=meta["preprocessing"],
        labels=meta["labels"],
        compression=meta["compression"],
    )
    manifest = write_bundle(
        parts,
        settings,
        profile,
        out=Path(request.out),
        batch=request.batch,
        dynamic_batch=request.dynamic_batch,
        on_stage=on_stage,
    )
    on_stage.done()
    return ExportResult(bundle_dir=Path(request.out), manifest=manifest, settings=settings)
