"""ONNX Runtime engine (CPU or CUDA execution provider)."""

import os

import numpy as np

from edgefl.runtime.engine_base import Engine

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8,
              "tensor(int8)": np.int8, "tensor(double)": np.float64}


class OnnxRuntimeEngine(Engine):
    """Runs ``manifest["model_file"]`` with onnxruntime.

    Args:
        providers: execution providers in order (default: CUDA when available, then CPU).
        threads: intra-op threads (1 keeps a shared board responsive).
        initializers: {graph initializer name: array} used in place of the graph's own values
            (new weights for the same graph, e.g. a federation's global model).
    """

    def __init__(self, bundle_dir, manifest, providers=None, threads=1, initializers=None):
        import onnxruntime as ort  # heavy: imported where used

        self.manifest = manifest
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        # the OrtValues must outlive the session's construction: keep them on the engine
        self._initializers = [(n, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v)))
                              for n, v in sorted((initializers or {}).items())]
        for name, value in self._initializers:
            so.add_initializer(name, value)
        available = ort.get_available_providers()
        providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                                  if p in available]
        self.session = ort.InferenceSession(os.path.join(bundle_dir, manifest["model_file"]),
                                            sess_options=so, providers=providers)
        self.inputs = {i.name: (_ORT_TYPES.get(i.type, np.float32), i.shape)
                       for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _run(self, feed):
        return self.session.run(self.output_names, feed)

    def infer(self, feed):
        feed = {k: np.ascontiguousarray(v, dtype=self.inputs[k][0]) if k in self.inputs else v
                for k, v in feed.items()}
        name = next(iter(self.inputs))
        fixed = self.inputs[name][1][0] if self.inputs[name][1] else None
        n = len(feed[name]) if np.ndim(feed[name]) else 1
        if isinstance(fixed, int) and fixed > 0 and n != fixed and n % fixed == 0:
            # a static batch dimension: run in slices and stack
            parts = [self._run({k: v[i:i + fixed] for k, v in feed.items()})
                     for i in range(0, n, fixed)]
            outs = [np.concatenate([p[j] for p in parts]) for j in range(len(self.output_names))]
        else:
            outs = self._run(feed)
        return dict(zip(self.output_names, outs))
