"""`edgefl export` as one library call: checkpoint -> verified bundle directory.

Stages (each a function elsewhere in edgefl.export): resolve settings -> load checkpoint ->
torch -> ONNX (opset of the profile) -> [INT8 Q/DQ] -> graph checks -> write -> full checker ->
parity oracle -> head + calibration -> TensorRT engine or on-device build plan -> manifest.
The bundle is assembled in a staging directory and moved into place only when every check passed.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from edgefl.errors import EdgeflError
from edgefl.export import bundle as bundle_io
from edgefl.export.graph_checks import (
    check_model_full,
    check_no_trt8_int64_hazards,
    check_opset,
    int64_weights,
)
from edgefl.export.precision import ExportSettings, resolve_export_settings
from edgefl.export.quantize import has_qdq, qdq_summary, quantize_static_qdq
from edgefl.export.samples import load_samples
from edgefl.export.torch_export import (
    INPUT_NAME,
    OUTPUT_NAMES,
    add_metadata,
    export_metadata,
    onnx_from_module,
    prepare_for_export,
)
from edgefl.export.verify import raise_on_failure, run_parity, tensorrt_parity


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


@dataclasses.dataclass
class ExportResult:
    bundle_dir: Path
    manifest: dict
    settings: ExportSettings


class _Stages:
    """Adapts the edgefl.progress seam to named stages (one bar step per stage)."""

    def __init__(self, progress, total: int):
        self._task = progress.task("export", total=total) if progress is not None else None
        self._started = False

    def __call__(self, name: str) -> None:
        if self._task is None:
            return
        if self._started:
            self._task.advance()
        self._started = True
        self._task.update(stage=name)

    def done(self) -> None:
        if self._task is not None:
            self._task.advance()
            self._task.update(stage="done")


def _trt_major(version: str) -> int:
    return int(version.split(".")[0]) if version else 0


def _engine_step(
    staging: Path, settings: ExportSettings, request: ExportRequest, has_calib: bool, io: dict
) -> dict | None:
    """Build the TensorRT engine now when TensorRT + a GPU are here; otherwise record the on-device plan.

    An engine built here is keyed to this machine's TensorRT and GPU; when they are not the target's,
    the device still builds its own (``build_on_device`` stays true) and the host engine serves as
    verification (parser accepts the file, parity of the engine).
    """
    if settings.format != "tensorrt":
        return None
    from edgefl.runtime import trt_build

    plan = trt_build.engine_plan(
        precision=settings.engine_precision,
        workspace_mb=settings.workspace_mb,
        batch=request.batch,
        dynamic_batch=request.dynamic_batch,
        calibration=bundle_io.CALIB_FILE if has_calib else None,
    )
    available, reason = trt_build.tensorrt_available()
    if not available:
        return {
            "build_on_device": True,
            "reason": reason,
            "expected_tensorrt": settings.trt_version,
            "command": "python -m edgefl.runtime build-engine BUNDLE_DIR",
            **plan,
        }
    built = trt_build.build_engine(staging, plan, manifest=dict(io, engine=plan))
    same_line = trt_build.version_tuple(built["tensorrt_version"]) == trt_build.version_tuple(
        settings.trt_version
    )
    return {
        "build_on_device": not same_line,
        "reason": None
        if same_line
        else f"built with TensorRT {built['tensorrt_version']} here; the target runs {settings.trt_version}",
        "expected_tensorrt": settings.trt_version,
        "command": "python -m edgefl.runtime build-engine BUNDLE_DIR",
        **plan,
        **built,
    }


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
    import torch

    from edgefl import __version__
    from edgefl.checkpoint import load_checkpoint
    from edgefl.export.profiles import load_profile

    if request.batch < 1:
        raise EdgeflError(f"--batch must be ≥ 1, got {request.batch}")
    profile = load_profile(request.profile)
    resolve_export_settings(profile, request.precision, request.format)  # refuse before any heavy work
    out = Path(request.out)
    _check_out(out)  # before any heavy work
    on_stage = _Stages(progress, 6 if (request.precision, request.format) == ("int8", "onnx") else 5)
    on_stage("load checkpoint")
    checkpoint = load_checkpoint(request.checkpoint)
    config = checkpoint.config
    input_shape = tuple(request.input_shape or config["input_shape"])
    if len(input_shape) != 3:
        raise EdgeflError(f"input shape {input_shape} is not C,H,W — pass --input-shape C,H,W")
    torch.set_num_threads(1)
    reference = checkpoint.model.eval()  # parity is judged against the model as trained
    model = prepare_for_export(reference).eval()

    on_stage(f"torch → ONNX (opset {profile.max_opset})")
    proto = onnx_from_module(model, input_shape, profile.max_opset, request.batch, request.dynamic_batch)
    add_metadata(proto, export_metadata(model))
    quantized_model = has_qdq(proto)
    settings = resolve_export_settings(profile, request.precision, request.format, quantized_model)
    samples = load_samples(
        config, input_shape, request.samples, request.parity_samples, request.calib_samples
    )
    if settings.calibration == "ort-static-qdq":
        on_stage("INT8 static quantization (Q/DQ)")
        proto = quantize_static_qdq(
            proto,
            samples.calibration,
            INPUT_NAME,
            1 if request.dynamic_batch else request.batch,
            reduce_range=profile.arch == "x86_64",
        )
    if 0 < _trt_major(profile.tensorrt) < 10:
        check_no_trt8_int64_hazards(proto)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=str(out.parent)))
    try:
        model_path = staging / bundle_io.MODEL_FILE
        onnx.save(proto, str(model_path))
        on_stage("onnx.checker (full)")
        written = onnx.load(str(model_path))
        opset = check_opset(written, profile.max_opset, bundle_io.MODEL_FILE)
        check_model_full(model_path)

        on_stage(f"parity on {len(samples.parity)} real samples")
        parity = run_parity(reference, model_path, samples.parity, settings.parity_checks)
        raise_on_failure(parity)

        weight = model.classifier.weight.detach().float().numpy()
        bias = model.classifier.bias
        bias = bias.detach().float().numpy() if bias is not None else np.zeros(weight.shape[0], np.float32)
        bundle_io.write_head(staging / bundle_io.HEAD_FILE, weight, bias)
        files = [bundle_io.MODEL_FILE, bundle_io.HEAD_FILE]
        has_calib = settings.calibration != "none"
        if has_calib:
            bundle_io.write_calibration(staging / bundle_io.CALIB_FILE, samples.calibration)
            files.append(bundle_io.CALIB_FILE)

        on_stage("TensorRT engine" if settings.format == "tensorrt" else "manifest")
        batch_dim = "batch" if request.dynamic_batch else request.batch
        io = {
            "model_file": bundle_io.MODEL_FILE,
            "inputs": [bundle_io.io_spec(INPUT_NAME, (batch_dim, *input_shape))],
            "outputs": [
                bundle_io.io_spec(OUTPUT_NAMES[0], (batch_dim, int(weight.shape[0]))),
                bundle_io.io_spec(OUTPUT_NAMES[1], (batch_dim, int(weight.shape[1]))),
            ],
        }
        engine = _engine_step(staging, settings, request, has_calib, io)
        if engine and engine.get("engine_file"):
            files.append(engine["engine_file"])
            parity["tensorrt"] = tensorrt_parity(
                reference, staging, dict(io, engine=engine), samples.parity, engine["precision"]
            )
            raise_on_failure(parity)
        manifest = bundle_io.build_manifest(
            edgefl_version=__version__,
            model=config["model"],
            inputs=io["inputs"],
            outputs=io["outputs"],
            preprocessing=config.get("preprocessing"),
            labels=config.get("labels"),
            profile=profile.to_dict(),
            precision=settings.precision,
            opset=opset,
            compression=_compression_summary(config.get("compression"), written, quantized_model, settings),
            parity={name: r for name, r in parity.items() if r["gated"]},
            parity_info={name: r for name, r in parity.items() if not r["gated"]},
            verification={
                "onnx_checker": "full_check passed",
                "samples": samples.source,
                "parity_samples": int(len(samples.parity)),
                "calibration_samples": int(len(samples.calibration)) if has_calib else 0,
                "int64_weights": len(int64_weights(written)),
                "trt8_int64_hazards": 0 if 0 < _trt_major(profile.tensorrt) < 10 else None,
                "tensorrt_run": bool(engine and engine.get("engine_file")),
            },
            settings=dict(settings.to_dict(), batch=request.batch, dynamic_batch=request.dynamic_batch),
            engine=engine,
            files=bundle_io.hash_bundle_files(staging, files),
        )
        bundle_io.write_manifest(staging, manifest)
        _publish(staging, out)
        on_stage.done()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(bundle_dir=out, manifest=manifest, settings=settings)


def _compression_summary(compression, proto, quantized_model: bool, settings: ExportSettings):
    if not compression and not quantized_model and settings.onnx_precision != "int8-qdq":
        return None
    summary = {"method": (compression or {}).get("method") if isinstance(compression, dict) else None}
    if settings.onnx_precision == "int8-qdq":
        summary["qdq"] = qdq_summary(proto)
        summary["quantized_by"] = (
            "checkpoint (Q/DQ from fake-quant)" if quantized_model else "onnxruntime static QDQ"
        )
    return summary


def _check_out(out: Path) -> None:
    """--out may be new, empty, or an earlier bundle (replaced); anything else is refused."""
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / bundle_io.MANIFEST).is_file())
    ):
        raise EdgeflError(f"{out} exists and is not an edgefl bundle — choose another --out")


def _publish(staging: Path, out: Path) -> None:
    """Move the finished bundle into place, replacing an earlier bundle there."""
    if out.exists():
        _check_out(out)
        shutil.rmtree(out)
    staging.rename(out)
