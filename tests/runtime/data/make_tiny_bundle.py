"""Regenerate tiny_bundle/ (host only: needs onnx). A 4x4 single-channel "classifier" with a
features output and a 3-class head, in the bundle layout the runtime reads.

    .venv/bin/python tests/runtime/data/make_tiny_bundle.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgefl.runtime.bundle import hash_files, write_document
from edgefl.runtime.wire import encode_tensors

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_bundle")


def main():
    rng = np.random.RandomState(0)
    w1 = rng.randn(16, 8).astype(np.float32) * 0.5
    w2 = rng.randn(8, 3).astype(np.float32) * 0.5
    b2 = rng.randn(3).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["features"]),
        helper.make_node("Gemm", ["features", "w2", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 8])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
         numpy_helper.from_array(b2, "b2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7  # onnxruntime 1.10 (JetPack 4.6) reads IR <= 8
    onnx.checker.check_model(model)
    os.makedirs(HERE, exist_ok=True)
    onnx.save(model, os.path.join(HERE, "model.onnx"))
    with open(os.path.join(HERE, "head.safetensors"), "wb") as f:
        f.write(encode_tensors({"weight": w2.T.copy(), "bias": b2}, {"format": "edgefl.head"}))
    files = hash_files(HERE, ["model.onnx", "head.safetensors"])
    manifest = {
        "edgefl_version": "test", "model": "tiny",
        "model_file": "model.onnx",
        "inputs": [{"name": "input", "shape": ["batch", 1, 4, 4], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": ["batch", 3], "dtype": "float32"},
                    {"name": "features", "shape": ["batch", 8], "dtype": "float32"}],
        "preprocessing": {"scale": 1 / 255, "mean": [0.5], "std": [0.25]}, "labels": None,
        "profile": {}, "precision": "fp32", "opset": 13, "compression": None, "parity": {},
        "files": files, "head": "head.safetensors"}
    write_document(HERE, "bundle", manifest)


if __name__ == "__main__":
    main()
