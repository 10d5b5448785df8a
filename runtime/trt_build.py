"""TensorRT engine builder for the device: TensorRT 8.2 (JetPack 4.6) and 10.x (JetPack 6).

Engines are tied to the TensorRT version and the GPU, so they are built where they run. The
API differences between versions are isolated in ``API_SHAPES`` (one small dict of functions per
major line); the choices (flags, workspace, shapes, file name, header) are pure functions that the
tests exercise without TensorRT. ``tensorrt`` is imported lazily.

Engine files start with a stamp: b"EFLE", a 4-byte little-endian header length, a JSON header
(TensorRT version, compute capability, precision, ONNX sha256, shapes), then the serialized plan.

Edge code: Python 3.6, numpy only, no torch.
"""

import argparse
import json
import os
import struct
import sys
import time

from edgefl.runtime.bundle import read_manifest
from edgefl.runtime.errors import EdgeRuntimeError

ENGINE_MAGIC = b"EFLE"
CALIB_CACHE = "calib.cache"
PRECISION_FLAGS = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}
MiB = 1 << 20


# ---------------------------------------------------------------------------------------- pure logic
def version_tuple(version):
    """'8.2.1.8' -> (8, 2); '10.3.0' -> (10, 3)."""
    parts = str(version).split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise EdgeRuntimeError(
            "unreadable TensorRT version {!r} — check the tensorrt install".format(version)
        )


def engine_plan(precision, workspace_mb, batch=1, dynamic_batch=False, calibration=None):
    """What to build, as JSON-able data (recorded in the manifest; the device builds from it).

    Args:
        precision: "fp32", "fp16" or "int8".
        workspace_mb: builder workspace limit.
        batch: static batch, or the opt/max batch of the optimisation profile when ``dynamic_batch``.
        dynamic_batch: one optimisation profile min 1 / opt ``batch`` / max ``batch``.
        calibration: bundle file with calibration inputs (INT8 with implicit calibration), or None.
    """
    if precision not in PRECISION_FLAGS:
        raise EdgeRuntimeError("unknown engine precision {!r} — use fp32, fp16 or int8".format(precision))
    if int(batch) < 1:
        raise EdgeRuntimeError("batch must be >= 1, got {}".format(batch))
    shapes = {"min": 1 if dynamic_batch else int(batch), "opt": int(batch), "max": int(batch)}
    return {
        "precision": precision,
        "workspace_mb": int(workspace_mb),
        "dynamic_batch": bool(dynamic_batch),
        "batch": shapes,
        "calibration": calibration,
        "calibration_cache": CALIB_CACHE if (precision == "int8" and calibration) else None,
    }


def builder_flags(precision, fast_fp16, fast_int8):
    """Builder flag names for a precision; refuses (never downgrades) what the GPU cannot do fast.

    INT8 engines also enable FP16 where the GPU has it, so layers without INT8 kernels fall back to
    FP16 rather than FP32.
    """
    if precision == "fp16" and not fast_fp16:
        raise EdgeRuntimeError("this GPU has no fast FP16 — build with precision fp32")
    if precision == "int8" and not fast_int8:
        raise EdgeRuntimeError(
            "this GPU has no fast INT8 (platform_has_fast_int8 is false) — build fp16, or run the INT8 "
            "model on onnxruntime (CPU)"
        )
    flags = list(PRECISION_FLAGS[precision])
    if precision == "int8" and not fast_fp16:
        flags.remove("FP16")
    return flags


def api_line(version):
    """Which API shape a TensorRT version uses: 8 (8.x) or 10 (10.x); others are refused."""
    major, _minor = version_tuple(version)
    if major in API_SHAPES:
        return major
    if major > 10:
        raise EdgeRuntimeError(
            "TensorRT {} removed builder precision flags and implicit INT8 calibration; Jetson runs "
            "TensorRT <= 10 — use the TensorRT shipped with JetPack".format(version)
        )
    raise EdgeRuntimeError(
        "TensorRT {} is not supported — use 8.2 (JetPack 4.6) or 10.x (JetPack 6)".format(version)
    )


def engine_file_name(precision, trt_version, compute_capability):
    """Engines are keyed by what makes them non-portable: TensorRT version, GPU, precision."""
    return "model.{}.trt{}.sm{}.engine".format(
        precision, trt_version, str(compute_capability).replace(".", "")
    )


def stamp_engine(plan_bytes, header):
    """Prefix a serialized plan with the JSON header (see module docstring)."""
    blob = json.dumps(header, sort_keys=True).encode("utf-8")
    return ENGINE_MAGIC + struct.pack("<I", len(blob)) + blob + bytes(plan_bytes)


def read_stamped_engine(data):
    """Split a stamped engine file into (header dict, plan bytes)."""
    if len(data) < 8 or data[:4] != ENGINE_MAGIC:
        raise EdgeRuntimeError("not an edgefl engine file (no EFLE stamp) — rebuild it with build-engine")
    (size,) = struct.unpack("<I", data[4:8])
    if len(data) < 8 + size:
        raise EdgeRuntimeError("engine file is truncated — rebuild it with build-engine")
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except ValueError:
        raise EdgeRuntimeError("engine file header is corrupt — rebuild it with build-engine")
    return header, data[8 + size :]


def check_stamp(header, trt_version, compute_capability):
    """Refuse an engine built by another TensorRT version or for another GPU (they fail obscurely)."""
    if header.get("tensorrt_version") != str(trt_version) or str(header.get("compute_capability")) != str(
        compute_capability
    ):
        raise EdgeRuntimeError(
            "engine was built with TensorRT {} for sm {}, this device has TensorRT {} sm {} — rebuild it: "
            "python -m edgefl.runtime build-engine BUNDLE".format(
                header.get("tensorrt_version"),
                header.get("compute_capability"),
                trt_version,
                compute_capability,
            )
        )


# ------------------------------------------------------------------------------ API shapes per version
def _network_v8(trt, builder):
    return builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))


def _network_v10(trt, builder):
    return builder.create_network(0)  # explicit batch is the only mode in 10.x


def _workspace_v8(trt, config, nbytes, version):
    if version_tuple(version) >= (8, 4):  # set_memory_pool_limit exists from 8.4; 8.2 only has the field
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)
    else:
        config.max_workspace_size = nbytes


def _workspace_v10(trt, config, nbytes, version):
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)


def _serialize_v8(builder, network, config):
    if hasattr(builder, "build_serialized_network"):
        return builder.build_serialized_network(network, config)
    engine = builder.build_engine(network, config)  # pragma: no cover - TensorRT < 8.0
    return engine.serialize() if engine is not None else None


def _serialize_v10(builder, network, config):
    return builder.build_serialized_network(network, config)


API_SHAPES = {
    8: {"network": _network_v8, "workspace": _workspace_v8, "serialize": _serialize_v8},
    10: {"network": _network_v10, "workspace": _workspace_v10, "serialize": _serialize_v10},
}


def configure_builder(trt, builder, network, plan, version, input_name, input_shape, calibrator=None):
    """Create and fill the builder config (flags, workspace, shapes, calibrator); no building here.

    ``input_shape`` is C, H, W; the batch dimension comes from ``plan["batch"]``.
    """
    api = API_SHAPES[api_line(version)]
    config = builder.create_builder_config()
    api["workspace"](trt, config, int(plan["workspace_mb"]) * MiB, version)
    fast_fp16 = getattr(builder, "platform_has_fast_fp16", True)
    fast_int8 = getattr(builder, "platform_has_fast_int8", True)
    for flag in builder_flags(plan["precision"], fast_fp16, fast_int8):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if plan["precision"] == "int8" and calibrator is not None:
        config.int8_calibrator = calibrator
    if plan["dynamic_batch"]:
        profile = builder.create_optimization_profile()
        dims = [tuple([plan["batch"][k]] + list(input_shape)) for k in ("min", "opt", "max")]
        profile.set_shape(input_name, dims[0], dims[1], dims[2])
        config.add_optimization_profile(profile)
        if calibrator is not None and hasattr(config, "set_calibration_profile"):
            config.set_calibration_profile(profile)
    return config


# ------------------------------------------------------------------------------------- I/O shell
def tensorrt_available():
    """(True, version) when tensorrt imports and a CUDA GPU answers; else (False, reason)."""
    try:
        import tensorrt as trt
    except ImportError:
        return False, "the tensorrt Python module is not installed here (JetPack ships it on the device)"
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        if builder is None:
            raise RuntimeError("Builder is None")
    except Exception as exc:  # no GPU / driver: TensorRT raises various errors
        return False, "tensorrt {} imports but no CUDA GPU is usable ({})".format(trt.__version__, exc)
    return True, trt.__version__


def _make_calibrator(trt, batches, cache_path, cuda):
    """IInt8EntropyCalibrator2 over numpy batches with a calibration cache file."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(batches)
            self._device = cuda.alloc(batches[0].nbytes)

        def get_batch_size(self):
            return int(batches[0].shape[0])

        def get_batch(self, names):
            batch = next(self._batches, None)
            if batch is None:
                return None
            cuda.htod(self._device, batch)
            return [int(cuda.pointer(self._device))]

        def read_calibration_cache(self):
            if os.path.isfile(cache_path):
                with open(cache_path, "rb") as f:
                    return f.read()
            return None

        def write_calibration_cache(self, cache):
            with open(cache_path, "wb") as f:
                f.write(bytes(cache))

    return EntropyCalibrator()


def build_engine(bundle_dir, plan=None, logger_level="WARNING", manifest=None):
    """Parse the bundle's model.onnx and build + stamp the engine in the bundle directory.

    Args:
        bundle_dir: the bundle directory (the engine file is written there).
        plan: engine plan (``engine_plan``); default: the manifest's "engine" entry.
        logger_level: TensorRT logger severity name.
        manifest: the manifest dict when it is not on disk yet (export builds before writing it);
            needs "model_file" and "inputs".

    Returns:
        dict: engine_file, tensorrt_version, compute_capability, build_seconds, engine_sha256.
    """
    import hashlib

    import numpy as np
    import tensorrt as trt

    from edgefl.runtime.cuda_memory import cuda_memory

    if manifest is None:
        manifest = read_manifest(bundle_dir, verify=True)
    plan = plan or (manifest.get("engine") or {})
    if "precision" not in plan:
        raise EdgeRuntimeError("the bundle has no engine plan — export it with --format tensorrt")
    version = trt.__version__
    api = API_SHAPES[api_line(version)]
    cuda = cuda_memory(version)
    cc = cuda.compute_capability()
    logger = trt.Logger(getattr(trt.Logger, logger_level))
    builder = trt.Builder(logger)
    network = api["network"](trt, builder)
    parser = trt.OnnxParser(network, logger)
    with open(os.path.join(bundle_dir, manifest["model_file"]), "rb") as f:
        onnx_bytes = f.read()
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgeRuntimeError(
            "TensorRT {} could not parse model.onnx: {} — re-export for this profile".format(version, errors)
        )
    first_input = manifest["inputs"][0]
    calibrator = None
    if plan["precision"] == "int8" and plan.get("calibration"):
        x = np.load(os.path.join(bundle_dir, plan["calibration"]), allow_pickle=False).astype(np.float32)
        step = int(plan["batch"]["opt"])
        batches = [np.ascontiguousarray(x[i : i + step]) for i in range(0, len(x) - step + 1, step)]
        calibrator = _make_calibrator(trt, batches, os.path.join(bundle_dir, CALIB_CACHE), cuda)
    config = configure_builder(
        trt, builder, network, plan, version, first_input["name"], first_input["shape"][1:], calibrator
    )
    started = time.time()
    serialized = api["serialize"](builder, network, config)
    if serialized is None:
        raise EdgeRuntimeError(
            "TensorRT {} failed to build the engine (see the log above) — try a larger "
            "workspace (--workspace-mb) or fp32".format(version)
        )
    header = {
        "tensorrt_version": version,
        "compute_capability": cc,
        "precision": plan["precision"],
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "batch": plan["batch"],
        "dynamic_batch": plan["dynamic_batch"],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    stamped = stamp_engine(serialized, header)
    name = engine_file_name(plan["precision"], version, cc)
    with open(os.path.join(bundle_dir, name), "wb") as f:
        f.write(stamped)
    return {
        "engine_file": name,
        "tensorrt_version": version,
        "compute_capability": cc,
        "build_seconds": round(time.time() - started, 3),
        "engine_sha256": hashlib.sha256(stamped).hexdigest(),
    }


def main(argv=None):
    """``python -m edgefl.runtime build-engine BUNDLE [--precision P] [--workspace-mb N]`` -> exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m edgefl.runtime build-engine",
        description="Build the TensorRT engine of a bundle on this device.",
    )
    parser.add_argument("bundle")
    parser.add_argument(
        "--precision",
        choices=sorted(PRECISION_FLAGS),
        default=None,
        help="override the bundle's engine precision",
    )
    parser.add_argument("--workspace-mb", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest(args.bundle, verify=True)  # a changed bundle is refused first
        plan = dict(manifest.get("engine") or {})
        if not plan:
            raise EdgeRuntimeError(
                "{} has no engine plan — export it with --format tensorrt".format(args.bundle)
            )
        if args.precision:
            plan["precision"] = args.precision
        if args.workspace_mb:
            plan["workspace_mb"] = args.workspace_mb
        available, detail = tensorrt_available()
        if not available:
            raise EdgeRuntimeError(detail + " — run build-engine on the device")
        built = build_engine(args.bundle, plan, manifest=manifest)
    except (EdgeRuntimeError, IOError, ValueError) as exc:
        sys.stderr.write("error: {}\n".format(exc))
        return 2
    sys.stdout.write(
        "built {} (TensorRT {}, sm {}, {} s)\n".format(
            built["engine_file"],
            built["tensorrt_version"],
            built["compute_capability"],
            built["build_seconds"],
        )
    )
    return 0
