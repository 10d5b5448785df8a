"""Engine seam, bundle manifest verification and the numpy head trainer on engine features."""
import json
import os

import numpy as np
import pytest

from edgefl.runtime.config import load_model_tensors
from edgefl.runtime.engine import ENGINES, open_engine, preprocess
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.head_trainer import BIAS, WEIGHT, HeadTrainer, features_from_engine
from edgefl.runtime.bundle import read_manifest, seal



def test_manifest_is_verified_file_by_file(bundle):
    assert read_manifest(bundle)["model_file"] == "model.onnx"
    with open(os.path.join(bundle, "head.safetensors"), "ab") as f:
        f.write(b"x")
    with pytest.raises(EdgeRuntimeError, match="sha256"):
        read_manifest(bundle)
    os.remove(os.path.join(bundle, "head.safetensors"))
    with pytest.raises(EdgeRuntimeError, match="missing"):
        read_manifest(bundle)


def test_manifest_rejects_escaping_paths_and_bad_versions(bundle):
    path = os.path.join(bundle, "manifest.json")
    with open(path) as f:
        m = json.load(f)
    m["files"]["../../etc/passwd"] = "0" * 64
    with open(path, "w") as f:
        json.dump(seal(m), f)  # sealed as a writer would: the name itself is refused
    with pytest.raises(EdgeRuntimeError, match="outside"):
        read_manifest(bundle)
    m["version"] = 99
    with open(path, "w") as f:
        json.dump(seal(m), f)
    with pytest.raises(EdgeRuntimeError, match="version"):
        read_manifest(bundle)


def test_onnxruntime_engine_matches_numpy(bundle):
    pytest.importorskip("onnxruntime")
    engine = open_engine(bundle, "onnxruntime")
    head = load_model_tensors(bundle)
    x = np.random.RandomState(0).rand(7, 1, 4, 4).astype(np.float32)
    out = engine.infer({"input": x})
    np.testing.assert_allclose(out["logits"], out["features"] @ head[WEIGHT].T + head[BIAS],
                               rtol=1e-5, atol=1e-5)
    auto = open_engine(bundle, "auto")  # no TensorRT here: falls back to onnxruntime
    np.testing.assert_allclose(auto.infer({"input": x})["logits"], out["logits"])


def test_backend_registry_and_errors(bundle):
    assert ENGINES["tensorrt"] == "edgefl.runtime.trt_engine:TensorRTEngine"
    with pytest.raises(EdgeRuntimeError, match="unknown backend"):
        open_engine(bundle, "tvm")


def test_preprocess_scales_uint8_and_normalises():
    x = np.full((2, 1, 2, 2), 255, np.uint8)
    out = preprocess(x, {"scale": 1 / 255, "mean": [0.5], "std": [0.25]})
    np.testing.assert_allclose(out, 2.0)
    assert out.dtype == np.float32


def test_head_trainer_learns_on_engine_features(bundle):
    pytest.importorskip("onnxruntime")
    engine = open_engine(bundle, "onnxruntime")
    rng = np.random.RandomState(1)
    x = rng.rand(120, 1, 4, 4).astype(np.float32)
    feats = features_from_engine(engine, x, batch_size=32)
    labels = (feats[:, 0] > np.median(feats[:, 0])).astype(np.int64)  # a task the head can learn
    head = load_model_tensors(bundle)
    trainer = HeadTrainer(feats, labels, seed=0)
    before = float(((feats @ head[WEIGHT].T + head[BIAS]).argmax(1) == labels).mean())
    res = trainer.train(head, {"epochs": 30, "lr": 0.5, "batch_size": 16})
    assert res.num_examples == 120 and set(res.tensors) == {WEIGHT, BIAS}
    assert res.metrics["train_accuracy"] > max(before, 0.85)
    np.testing.assert_array_equal(head[WEIGHT], load_model_tensors(bundle)[WEIGHT])  # untouched
    prox = trainer.train(head, {"epochs": 30, "lr": 0.5, "batch_size": 16, "prox_mu": 1.0})
    assert np.linalg.norm(prox.tensors[WEIGHT] - head[WEIGHT]) < \
        np.linalg.norm(res.tensors[WEIGHT] - head[WEIGHT])


def test_a_bundle_head_trainer_opens_its_engine_only_when_prepared(bundle, tmp_path):
    """The agent connects first; the features (onnxruntime) come when the loop prepares it —
    the same training as a HeadTrainer on features computed at once. A bad bundle still stops
    it before it connects."""
    pytest.importorskip("onnxruntime")
    from edgefl.runtime.head_trainer import BundleHeadTrainer

    rng = np.random.RandomState(2)
    x = (rng.rand(40, 1, 4, 4) * 255).astype(np.uint8)
    y = rng.randint(0, 3, 40)
    deferred = BundleHeadTrainer(bundle, x, y, "onnxruntime", seed=4)
    assert deferred.inner is None
    engine = open_engine(bundle, "onnxruntime")
    eager = HeadTrainer(features_from_engine(engine, preprocess(x, engine.manifest["preprocessing"])), y,
                        seed=4)
    head, options = load_model_tensors(bundle), {"epochs": 2, "lr": 0.1}
    got, want = deferred.train(head, options), eager.train(head, options)
    assert deferred.inner is not None and deferred.x is None
    np.testing.assert_array_equal(got.tensors[WEIGHT], want.tensors[WEIGHT])
    with pytest.raises(EdgeRuntimeError, match="manifest"):
        BundleHeadTrainer(str(tmp_path), x, y)
