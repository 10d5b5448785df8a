"""The inference-engine seam: ``open_engine(bundle_dir, backend) -> Engine``.

Engines live in their own modules and are imported only when chosen (onnxruntime and
TensorRT are heavy and absent on some machines). A backend class is constructed as
``cls(bundle_dir, manifest, **options)`` and implements :class:`Engine` (``engine_base``, which
the backends import: this module names them by string only).
"""

import importlib

import numpy as np

from edgefl.runtime.engine_base import Engine  # noqa: F401  (the contract, re-exported)
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.bundle import read_manifest

ENGINES = {
    "onnxruntime": "edgefl.runtime.ort_engine:OnnxRuntimeEngine",
    "tensorrt": "edgefl.runtime.trt_engine:TensorRTEngine",
}
AUTO_ORDER = ("tensorrt", "onnxruntime")


def _load(spec):
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def open_engine(bundle_dir, backend="auto", verify=True, **options):
    """Open a bundle with one backend ("onnxruntime", "tensorrt" or "auto").

    "auto" tries TensorRT, then onnxruntime, skipping those that cannot be imported here.
    """
    manifest = read_manifest(bundle_dir, verify=verify)
    if backend == "auto":
        missing = []
        for name in AUTO_ORDER:
            try:
                return _load(ENGINES[name])(bundle_dir, manifest, **options)
            except ImportError as exc:
                missing.append("{} ({})".format(name, exc))
        raise EdgeRuntimeError("no inference backend available: {} — install onnxruntime".format(
            "; ".join(missing)))
    if backend not in ENGINES:
        raise EdgeRuntimeError("unknown backend {!r} — choose one of auto, {}".format(
            backend, ", ".join(sorted(ENGINES))))
    try:
        cls = _load(ENGINES[backend])
    except ImportError as exc:
        raise EdgeRuntimeError("backend {!r} cannot be loaded here ({}) — install it or use "
                               "--backend auto".format(backend, exc))
    try:
        return cls(bundle_dir, manifest, **options)
    except ImportError as exc:
        raise EdgeRuntimeError("backend {!r} is not installed ({})".format(backend, exc))


def preprocess(x, preprocessing):
    """Apply a manifest's preprocessing with numpy: uint8 inputs are scaled by ``scale``;
    then per-channel ``(x - mean) / std`` on axis 1 (NCHW)."""
    x = np.asarray(x)
    prep = preprocessing or {}
    if x.dtype == np.uint8:
        x = x.astype(np.float32) * np.float32(prep.get("scale", 1.0 / 255))
    x = x.astype(np.float32)
    mean, std = prep.get("mean"), prep.get("std")
    if mean is not None and std is not None:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        x = (x - np.asarray(mean, np.float32).reshape(shape)) / \
            np.asarray(std, np.float32).reshape(shape)
    return x
