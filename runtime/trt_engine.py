"""TensorRT inference engine behind the runtime's ``infer(feed) -> outputs`` seam.

Two API shapes: TensorRT 8.x bindings (``num_bindings``, ``binding_is_input``, ``execute_async_v2``)
and 10.x named tensors (``num_io_tensors``, ``get_tensor_mode``, ``set_tensor_address``,
``execute_async_v3``). The shape is detected from the engine object, so one class serves both.
Device memory goes through the CUDA seam in ``cuda_memory`` (pycuda or cuda-python's ``cudart``).
``tensorrt`` and the CUDA modules are imported lazily.

Edge code: Python 3.6, numpy only, no torch.
"""

import glob
import os

import numpy as np

from edgefl.runtime.cuda_memory import cuda_memory
from edgefl.runtime.engine_base import Engine
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.bundle import read_manifest
from edgefl.runtime.trt_build import build_engine, check_stamp, engine_file_name, read_stamped_engine

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
            manifest = read_manifest(bundle_dir, verify=True)
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
            built = build_engine(bundle_dir, dict(plan, precision=self.precision), manifest=manifest)
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
