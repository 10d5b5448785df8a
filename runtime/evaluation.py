"""Central evaluation: score the federation's global model on held-out data (the edge side).

Contract (:class:`Evaluator`): ``evaluate(tensors) -> {"accuracy", "loss", "examples"}`` for the
global model's tensors (name -> float32 array), never modifying them. Here the bundle's graph runs
in onnxruntime: a head-only federation (``classifier.weight``/``classifier.bias``) scores the new
head on the bundle's features, computed once; a full-model federation runs the bundle's graph with
the new weights put in place of its initializers. The host passes a torch evaluator instead
(``edgefl.fl.central_eval``); the aggregator only sees this contract.
"""

import os
from collections import OrderedDict

import numpy as np

from edgefl.runtime.errors import EdgeRuntimeError

HEAD = ("classifier.weight", "classifier.bias")


class Evaluator(object):
    """See the module docstring."""

    def evaluate(self, tensors):
        raise NotImplementedError


def scores_from_logits(logits, labels):
    """Accuracy and mean cross-entropy (natural log) of class scores against integer labels."""
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.int64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = len(y)
    return {"accuracy": float((z.argmax(axis=1) == y).mean()) if n else 0.0,
            "loss": float(-log_p[np.arange(n), y].mean()) if n else 0.0, "examples": int(n)}


# --- reading initializer names and shapes from an ONNX file without the onnx package -----------
def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf):
    """(field number, wire type, value) of one protobuf message; values of length-delimited fields
    are memoryviews, varints are ints, fixed 32/64-bit fields are skipped."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire in (1, 5):
            value, i = None, i + (8 if wire == 1 else 4)
        else:
            raise EdgeRuntimeError("the bundle's ONNX file is not a readable protobuf (wire type {}) — "
                                   "re-export it".format(wire))
        yield num, wire, value


def onnx_initializers(path):
    """{name: shape} of the graph initializers of an ONNX file (ModelProto.graph = 7,
    GraphProto.initializer = 5, TensorProto.dims = 1, TensorProto.name = 8)."""
    with open(path, "rb") as f:
        model = memoryview(f.read())
    out = OrderedDict()
    for num, wire, graph in _fields(model):
        if num != 7 or wire != 2:
            continue
        for gnum, gwire, tensor in _fields(graph):
            if gnum != 5 or gwire != 2:
                continue
            name, dims = None, []
            for tnum, twire, value in _fields(tensor):
                if tnum == 8 and twire == 2:
                    name = bytes(value).decode("utf-8")
                elif tnum == 1 and twire == 0:
                    dims.append(value)
                elif tnum == 1 and twire == 2:  # packed dims
                    j = 0
                    while j < len(value):
                        d, j = _varint(value, j)
                        dims.append(d)
            if name is not None:
                out[name] = tuple(dims)
    return out


def initializer_names_for(tensors, initializers):
    """Map each global tensor to the graph initializer holding it: the same name, or the one name
    ending in ``.NAME`` (export wrappers add a prefix). Raises naming the first that has none."""
    mapping = OrderedDict()
    for name, value in tensors.items():
        found = [k for k in initializers if k == name or k.endswith("." + name)]
        if len(found) != 1 or tuple(initializers[found[0]]) != tuple(np.shape(value)):
            raise EdgeRuntimeError(
                "the bundle's graph holds no initializer {} of shape {} ({}) — it was folded or quantized "
                "at export; evaluate with the checkpoint (--eval-checkpoint) or an fp32 bundle".format(
                    name, tuple(np.shape(value)), "ambiguous" if len(found) > 1 else "none by that name"
                    if not found else "shape {}".format(initializers[found[0]])))
        mapping[name] = found[0]
    return mapping


class BundleEvaluator(Evaluator):
    """Scores global models with a bundle's graph in onnxruntime on held-out ``x`` (NCHW), ``y``.

    Args:
        bundle: bundle directory (manifest verified).
        x, y: held-out examples (raw: uint8 or float in [0, 1]; the manifest's preprocessing is applied)
            and their integer labels.
        batch_size: examples per inference call.
        threads: onnxruntime intra-op threads.
    """

    def __init__(self, bundle, x, y, batch_size=256, threads=1):
        from edgefl.runtime.engine import open_engine, preprocess
        from edgefl.runtime.bundle import read_manifest

        self.bundle = bundle
        self.manifest = read_manifest(bundle, verify=True)
        self.x = preprocess(x, self.manifest.get("preprocessing"))
        self.y = np.asarray(y, np.int64)
        if len(self.x) != len(self.y) or not len(self.y):
            raise EdgeRuntimeError("evaluation data needs as many labels as inputs (and some of both)")
        self.batch_size, self.threads = int(batch_size), int(threads)
        self.input = self.manifest["inputs"][0]["name"]
        self.logits = self.manifest["outputs"][0]["name"]
        self._open_engine = open_engine
        self._features = None
        self._initializers = None

    def evaluate(self, tensors):
        if set(tensors) <= set(HEAD) and len(tensors) == len(HEAD):
            return self._evaluate_head(tensors)
        return self._evaluate_graph(tensors)

    def _evaluate_head(self, tensors):
        if self._features is None:  # the backbone is fixed in a head-only federation: once
            from edgefl.runtime.head_trainer import features_from_engine

            engine = self._open_engine(self.bundle, "onnxruntime", verify=False, threads=self.threads)
            try:
                self._features = features_from_engine(engine, self.x, self.batch_size, self.input)
            finally:
                engine.close()
        w = np.asarray(tensors[HEAD[0]], np.float32)
        b = np.asarray(tensors[HEAD[1]], np.float32)
        if w.shape != (b.shape[0], self._features.shape[1]):
            raise EdgeRuntimeError("head {} does not fit the bundle's {} features — evaluate with the "
                                   "bundle the federation started from".format(w.shape,
                                                                              self._features.shape[1]))
        return scores_from_logits(self._features @ w.T + b, self.y)

    def _evaluate_graph(self, tensors):
        if self._initializers is None:
            self._initializers = onnx_initializers(os.path.join(self.bundle,
                                                                self.manifest["model_file"]))
        names = initializer_names_for(tensors, self._initializers)
        weights = dict((graph_name, np.asarray(tensors[n], np.float32)) for n, graph_name in names.items())
        engine = self._open_engine(self.bundle, "onnxruntime", verify=False, threads=self.threads,
                                   initializers=weights)
        try:
            outs = [engine.infer({self.input: self.x[i:i + self.batch_size]})[self.logits]
                    for i in range(0, len(self.x), self.batch_size)]
        finally:
            engine.close()
        return scores_from_logits(np.concatenate(outs), self.y)


def bundle_evaluator_from_files(bundle, data, threads=1):
    """A :class:`BundleEvaluator` on an .npz of held-out examples (x, y; no pickle)."""
    from edgefl.runtime.config import load_npz_data

    x, y = load_npz_data(data)
    if x.ndim == 3:  # N x H x W: one channel
        x = x[:, None]
    return BundleEvaluator(bundle, x, y, threads=threads)
