"""TensorRT inference engine behind the runtime's ``infer(feed) -> outputs`` seam.

Two API shapes: TensorRT 8.x bindings (``num_bindings``, ``binding_is_input``, ``execute_async_v2``)
and 10.x named tensors (``num_io_tensors``, ``get_tensor_mode``, ``set_tensor_address``,
``execute_async_v3``). The shape is detected from the engine object, so one class serves both.
Device memory goes through a tiny CUDA seam: pycuda (JetPack 4.6 samples) or cuda-python's
``cudart`` (JetPack 6). ``tensorrt`` and the CUDA modules are imported lazily.

Edge code: Python 3.6, numpy only, no torch.
"""

import glob
import json
import os

import numpy as np

from edgefl.runtime.engine import Engine
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.trt_build import MANIFEST, check_stamp, read_stamped_engine


# ------------------------------------------------------------------------------------- CUDA seam
class _Pycuda(object):
    """Device memory with pycuda (what the TensorRT 8.2 samples on JetPack 4.6 use)."""

    def __init__(self):
        import pycuda.autoinit  # noqa: F401  (creates the context)
        import pycuda.driver as driver

        self._driver = driver
        self.stream = driver.Stream()

    def compute_capability(self):
        major, minor = self._driver.Device(0).compute_capability()
        return "{}{}".format(major, minor)

    def alloc(self, nbytes):
        return self._driver.mem_alloc(max(int(nbytes), 1))

    def pointer(self, buf):
        return int(buf)

    def htod(self, buf, host):
        self._driver.memcpy_htod_async(buf, np.ascontiguousarray(host), self.stream)

    def dtoh(self, host, buf):
        self._driver.memcpy_dtoh_async(host, buf, self.stream)

    def stream_handle(self):
        return self.stream.handle

    def synchronize(self):
        self.stream.synchronize()


class _Cudart(object):
    """Device memory with cuda-python's runtime bindings (TensorRT 10 samples)."""

    def __init__(self):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self._rt = cudart
        self.stream = self._check(cudart.cudaStreamCreate())

    def _check(self, result):
        err, rest = result[0], result[1:]
        if int(err) != 0:
            raise EdgeRuntimeError("CUDA call failed ({}) — check the GPU and driver".format(err))
        return rest[0] if len(rest) == 1 else rest

    def compute_capability(self):
        props = self._check(self._rt.cudaGetDeviceProperties(0))
        return "{}{}".format(props.major, props.minor)

    def alloc(self, nbytes):
        return self._check(self._rt.cudaMalloc(max(int(nbytes), 1)))

    def pointer(self, buf):
        return int(buf)

    def htod(self, buf, host):
        host = np.ascontiguousarray(host)
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self._rt.cudaMemcpyAsync(buf, host.ctypes.data, host.nbytes, kind, self.stream))

    def dtoh(self, host, buf):
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self._rt.cudaMemcpyAsync(host.ctypes.data, buf, host.nbytes, kind, self.stream))

    def stream_handle(self):
        return int(self.stream)

    def synchronize(self):
        self._check(self._rt.cudaStreamSynchronize(self.stream))


CUDA_BACKENDS = {"pycuda": _Pycuda, "cudart": _Cudart}
# Preferred order per TensorRT line (what each JetPack's samples ship with), falling back to the other.
CUDA_PREFERENCE = {8: ("pycuda", "cudart"), 10: ("cudart", "pycuda")}


def cuda_memory(trt_version):
    """The first CUDA backend that imports, in the preference order of the TensorRT line."""
    major = int(str(trt_version).split(".")[0])
    missing = []
    for name in CUDA_PREFERENCE.get(major, ("cudart", "pycuda")):
        try:
            return CUDA_BACKENDS[name]()
        except ImportError as exc:
            missing.append("{} ({})".format(name, exc))
    # ImportError (not EdgeRuntimeError): open_engine(backend="auto") then falls back to onnxruntime.
    raise ImportError(
        "no CUDA Python module: {} — install pycuda (JetPack 4.6) or cuda-python".format(", ".join(missing))
    )


# ------------------------------------------------------------------------------- API-shape logic
def io_tensors(engine, trt):
    """[{"name", "is_input", "shape", "dtype", "index"}] for either API shape (pure over the engine)."""
    described = []
    if hasattr(engine, "num_io_tensors"):  # TensorRT >= 8.5 / 10.x named tensors
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            described.append(
                {
                    "name": name,
                    "index": i,
                    "is_input": engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                    "shape": tuple(engine.get_tensor_shape(name)),
                    "dtype": np.dtype(trt.nptype(engine.get_tensor_dtype(name))),
                }
            )
    else:  # TensorRT 8.2 bindings
        for i in range(engine.num_bindings):
            described.append(
                {
                    "name": engine.get_binding_name(i),
                    "index": i,
                    "is_input": engine.binding_is_input(i),
                    "shape": tuple(engine.get_binding_shape(i)),
                    "dtype": np.dtype(trt.nptype(engine.get_binding_dtype(i))),
                }
            )
    return described


def resolve_shapes(tensors, feed):
    """Concrete input shapes from the feed, checked against the engine's (-1 = dynamic) dims."""
    shapes = {}
    for t in tensors:
        if not t["is_input"]:
            continue
        if t["name"] not in feed:
            raise EdgeRuntimeError(
                "feed lacks input '{}' (engine inputs: {})".format(
                    t["name"], [x["name"] for x in tensors if x["is_input"]]
                )
            )
        shape = tuple(np.shape(feed[t["name"]]))
        if len(shape) != len(t["shape"]) or any(d not in (-1, s) for d, s in zip(t["shape"], shape)):
            raise EdgeRuntimeError(
                "input '{}' has shape {}, the engine takes {} — re-export with --batch or "
                "--dynamic-batch".format(t["name"], shape, t["shape"])
            )
        shapes[t["name"]] = shape
    return shapes


def set_input_shapes(context, tensors, shapes):
    """Tell the execution context the concrete input shapes (both API shapes)."""
    for t in tensors:
        if t["is_input"] and -1 in t["shape"]:
            if hasattr(context, "set_input_shape"):
                context.set_input_shape(t["name"], shapes[t["name"]])
            else:
                context.set_binding_shape(t["index"], shapes[t["name"]])


def output_shape(context, tensor):
    if hasattr(context, "get_tensor_shape"):
        return tuple(context.get_tensor_shape(tensor["name"]))
    return tuple(context.get_binding_shape(tensor["index"]))


def find_engine_file(bundle_dir, precision, trt_version, compute_capability):
    """The stamped engine matching this TensorRT + GPU + precision, or None."""
    from edgefl.runtime.trt_build import engine_file_name

    path = os.path.join(bundle_dir, engine_file_name(precision, trt_version, compute_capability))
    return path if os.path.isfile(path) else None


class TensorRTEngine(Engine):
    """``TensorRTEngine(bundle_dir).infer({"input": x}) -> {"logits": ..., "features": ...}``.

    Registered as "tensorrt" in ``edgefl.runtime.engine.ENGINES`` (constructed as
    ``cls(bundle_dir, manifest, **options)``). Builds the engine on first use when the bundle holds
    none for this TensorRT + GPU (``build_if_missing``), then deserializes it after checking its stamp.

    Args:
        bundle_dir: the bundle directory.
        manifest: the (verified) manifest; read from the bundle when None.
        build_if_missing: build the engine now when none matches this TensorRT + GPU.
        precision: engine precision override (default: the bundle's engine plan).
        threads: accepted for the seam's common options; TensorRT runs on the GPU and ignores it.
    """

    def __init__(self, bundle_dir, manifest=None, build_if_missing=True, precision=None, threads=None):
        import tensorrt as trt

        self._trt = trt
        self.bundle_dir = bundle_dir
        if manifest is None:
            with open(os.path.join(bundle_dir, MANIFEST)) as f:
                manifest = json.load(f)
        self.manifest = manifest
        plan = self.manifest.get("engine") or {}
        self.precision = precision or plan.get("precision") or "fp32"
        self._cuda = cuda_memory(trt.__version__)
        cc = self._cuda.compute_capability()
        path = find_engine_file(bundle_dir, self.precision, trt.__version__, cc)
        if path is None:
            if not build_if_missing:
                found = [os.path.basename(p) for p in glob.glob(os.path.join(bundle_dir, "*.engine"))]
                raise EdgeRuntimeError(
                    "no engine for TensorRT {} sm {} {} in {} (found {}) — run python -m "
                    "edgefl.runtime build-engine BUNDLE".format(
                        trt.__version__, cc, self.precision, bundle_dir, found
                    )
                )
            from edgefl.runtime.trt_build import build_engine

            built = build_engine(bundle_dir, dict(plan, precision=self.precision))
            path = os.path.join(bundle_dir, built["engine_file"])
        with open(path, "rb") as f:
            header, blob = read_stamped_engine(f.read())
        check_stamp(header, trt.__version__, cc)
        self.header = header
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(blob)
        if self.engine is None:
            raise EdgeRuntimeError(
                "TensorRT could not deserialize {} — rebuild it with build-engine".format(path)
            )
        self.context = self.engine.create_execution_context()
        self.tensors = io_tensors(self.engine, trt)
        self._buffers = {}

    def _buffer(self, name, nbytes):
        held = self._buffers.get(name)
        if held is None or held[1] < nbytes:
            held = (self._cuda.alloc(nbytes), nbytes)
            self._buffers[name] = held
        return held[0]

    def infer(self, feed):
        """Run one batch; ``feed`` maps input names to float32 arrays. Returns {output name: array}."""
        shapes = resolve_shapes(self.tensors, feed)
        set_input_shapes(self.context, self.tensors, shapes)
        pointers, outputs = [], {}
        for t in self.tensors:
            if t["is_input"]:
                host = np.ascontiguousarray(feed[t["name"]], dtype=t["dtype"])
                buf = self._buffer(t["name"], host.nbytes)
                self._cuda.htod(buf, host)
            else:
                host = np.empty(output_shape(self.context, t), dtype=t["dtype"])
                buf = self._buffer(t["name"], host.nbytes)
                outputs[t["name"]] = (host, buf)
            pointers.append(self._cuda.pointer(buf))
        if hasattr(self.context, "execute_async_v3"):
            for t, ptr in zip(self.tensors, pointers):
                self.context.set_tensor_address(t["name"], ptr)
            ok = self.context.execute_async_v3(self._cuda.stream_handle())
        else:
            ok = self.context.execute_async_v2(bindings=pointers, stream_handle=self._cuda.stream_handle())
        if not ok:
            raise EdgeRuntimeError("TensorRT execution failed — check the input shapes and the engine log")
        for host, buf in outputs.values():
            self._cuda.dtoh(host, buf)
        self._cuda.synchronize()
        return {name: host for name, (host, _buf) in outputs.items()}

    def close(self):
        """Drop the context, engine and device buffers (freed when their owners are collected)."""
        self._buffers = {}
        self.context = None
        self.engine = None
