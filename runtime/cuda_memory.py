"""Device memory for TensorRT: one tiny CUDA seam over pycuda (JetPack 4.6) or cuda-python (JetPack 6).

Used by the engine builder (``trt_build``, INT8 calibration batches) and the engine
(``trt_engine``, inference buffers); the CUDA modules are imported when a backend is made.

Edge code: Python 3.6, numpy only, no torch.
"""

import numpy as np

from edgefl.runtime.errors import EdgeRuntimeError


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
