"""The tail every export shares, whatever the model came from (checkpoint, nn.Module, ONNX file).

[INT8 Q/DQ] -> TensorRT 8 graph checks -> write into a staging directory -> full checker -> parity
against the reference -> head + calibration -> TensorRT engine or on-device build plan -> manifest ->
move into place. Nothing is published unless every check passed.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Callable

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
from edgefl.export.precision import ExportSettings
from edgefl.export.quantize import qdq_summary, quantize_static_qdq
from edgefl.export.samples import Samples
from edgefl.export.torch_export import INPUT_NAME, OUTPUT_NAMES
from edgefl.runtime.bundle import MANIFEST, hash_files, write_document
from edgefl.export.verify import raise_on_failure, run_parity, tensorrt_parity


@dataclasses.dataclass
class BundleParts:
    """A model ready to be bundled.

    Attributes:
        proto: the graph at the profile's opset; input ``input``, outputs ``logits`` and ``features``.
        model: what the manifest calls the model (zoo name, model reference, file name).
        input_shape: C, H, W.
        head: (weight [C, F], bias [C]) of the linear head, float32.
        reference: ``reference(x, half=False) -> {"logits", "features"}`` that parity compares against.
        against: what the reference is ("torch", "source ONNX") for the parity labels.
        samples: parity and calibration inputs (normalised) and where they came from.
        quantized_model: the graph already carries Q/DQ (a quantization-aware checkpoint).
        preprocessing, labels, compression: manifest fields (compression: the checkpoint's state).
        verification: extra manifest verification entries (e.g. the source file and the retarget plan).
    """

    proto: onnx.ModelProto
    model: str
    input_shape: tuple
    head: tuple
    reference: Callable
    against: str
    samples: Samples
    quantized_model: bool = False
    preprocessing: dict | None = None
    labels: list | None = None
    compression: dict | None = None
    verification: dict = dataclasses.field(default_factory=dict)


class Stages:
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


def trt_major(version: str) -> int:
    return int(version.split(".")[0]) if version else 0


def check_out(out: Path) -> None:
    """--out may be new, empty, or an earlier bundle (replaced); anything else is refused."""
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())
    ):
        raise EdgeflError(f"{out} exists and is not an edgefl bundle — choose another --out")


def publish(staging: Path, out: Path) -> None:
    """Move the finished bundle into place, replacing an earlier bundle there."""
    if out.exists():
        check_out(out)
        shutil.rmtree(out)
    staging.rename(out)


def engine_step(
    staging: Path, settings: ExportSettings, batch: int, dynamic_batch: bool, has_calib: bool, io: dict
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
        batch=batch,
        dynamic_batch=dynamic_batch,
        calibration=bundle_io.CALIB_FILE if has_calib else None,
    )
    command = "python -m edgefl.runtime build-engine BUNDLE_DIR"
    available, reason = trt_build.tensorrt_available()
    if not available:
        return {
            "build_on_device": True,
            "reason": reason,
            "expected_tensorrt": settings.trt_version,
            "command": command,
            **plan,
        }
    built = trt_build.build_engine(staging, plan, manifest=dict(io, engine=plan))
    same_line = trt_build.version_tuple(built["tensorrt_version"]) == trt_build.version_tuple(
        settings.trt_version
    )
    reason = (
        None
        if same_line
        else (f"built with TensorRT {built['tensorrt_version']} here; the target runs {settings.trt_version}")
    )
    return {
        "build_on_device": not same_line,
        "reason": reason,
        "expected_tensorrt": settings.trt_version,
        "command": command,
        **plan,
        **built,
    }


def compression_summary(compression, proto, quantized_model: bool, settings: ExportSettings):
    if not compression and not quantized_model and settings.onnx_precision != "int8-qdq":
        return None
    summary = {"method": (compression or {}).get("method") if isinstance(compression, dict) else None}
    if settings.onnx_precision == "int8-qdq":
        summary["qdq"] = qdq_summary(proto)
        summary["quantized_by"] = (
            "checkpoint (Q/DQ from fake-quant)" if quantized_model else "onnxruntime static QDQ"
        )
    return summary


def write_bundle(
    parts: BundleParts,
    settings: ExportSettings,
    profile,
    *,
    out: Path,
    batch: int = 1,
    dynamic_batch: bool = False,
    on_stage=None,
) -> dict:
    """Quantize if asked, verify and write the bundle directory `out`; returns the manifest.

    Raises:
        EdgeflError: checker or parity failure, TensorRT 8 hazards; nothing is left at `out` then.
    """
    from edgefl import __version__

    on_stage = on_stage or (lambda _name: None)
    proto, samples = parts.proto, parts.samples
    if settings.calibration == "ort-static-qdq":
        on_stage("INT8 static quantization (Q/DQ)")
        proto = quantize_static_qdq(
            proto,
            samples.calibration,
            INPUT_NAME,
            1 if dynamic_batch else batch,
            reduce_range=profile.arch == "x86_64",
        )
    if 0 < trt_major(profile.tensorrt) < 10:
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

        on_stage(f"parity on {len(samples.parity)} samples")
        parity = run_parity(
            parts.reference, model_path, samples.parity, settings.parity_checks, against=parts.against
        )
        raise_on_failure(parity)

        weight, bias = (np.asarray(t, np.float32) for t in parts.head)
        bundle_io.write_head(staging / bundle_io.HEAD_FILE, weight, bias)
        files = [bundle_io.MODEL_FILE, bundle_io.HEAD_FILE]
        has_calib = settings.calibration != "none"
        if has_calib:
            bundle_io.write_calibration(staging / bundle_io.CALIB_FILE, samples.calibration)
            files.append(bundle_io.CALIB_FILE)

        on_stage("TensorRT engine" if settings.format == "tensorrt" else "manifest")
        batch_dim = "batch" if dynamic_batch else batch
        io = {
            "model_file": bundle_io.MODEL_FILE,
            "inputs": [bundle_io.io_spec(INPUT_NAME, (batch_dim, *parts.input_shape))],
            "outputs": [
                bundle_io.io_spec(OUTPUT_NAMES[0], (batch_dim, int(weight.shape[0]))),
                bundle_io.io_spec(OUTPUT_NAMES[1], (batch_dim, int(weight.shape[1]))),
            ],
        }
        engine = engine_step(staging, settings, batch, dynamic_batch, has_calib, io)
        if engine and engine.get("engine_file"):
            files.append(engine["engine_file"])
            parity["tensorrt"] = tensorrt_parity(
                parts.reference, staging, dict(io, engine=engine), samples.parity, engine["precision"]
            )
            raise_on_failure(parity)
        manifest = bundle_io.build_manifest(
            edgefl_version=__version__,
            model=parts.model,
            inputs=io["inputs"],
            outputs=io["outputs"],
            preprocessing=parts.preprocessing,
            labels=parts.labels,
            profile=profile.to_dict(),
            precision=settings.precision,
            opset=opset,
            compression=compression_summary(parts.compression, written, parts.quantized_model, settings),
            parity={name: r for name, r in parity.items() if r["gated"]},
            parity_info={name: r for name, r in parity.items() if not r["gated"]},
            verification={
                "onnx_checker": "full_check passed",
                "samples": samples.source,
                "parity_samples": int(len(samples.parity)),
                "calibration_samples": int(len(samples.calibration)) if has_calib else 0,
                "int64_weights": len(int64_weights(written)),
                "trt8_int64_hazards": 0 if 0 < trt_major(profile.tensorrt) < 10 else None,
                "tensorrt_run": bool(engine and engine.get("engine_file")),
                **parts.verification,
            },
            settings=dict(settings.to_dict(), batch=batch, dynamic_batch=dynamic_batch),
            engine=engine,
            files=hash_files(str(staging), files),
        )
        manifest = write_document(str(staging), "bundle", manifest)
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest
