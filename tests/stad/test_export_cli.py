"""`edgefl export` routes a STAD student to the STAD exporter: a verified `cube` → `score` bundle."""
import json

import numpy as np

from edgefl.cli.app import main


def test_export_cli_writes_a_stad_bundle_that_matches_compress(tiny_stad, tmp_path, capsys):
    out, _ = tiny_stad
    code = main(["export", str(out / "student"), "--profile", "jetson-tx2", "--out", str(tmp_path / "b"),
                 "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    manifest = doc["manifest"]
    assert manifest["opset"] == 13 and manifest["parity"]["passed"] is True
    assert [i["name"] for i in manifest["inputs"]] == ["cube"]
    assert [o["name"] for o in manifest["outputs"]] == ["score"]
    from edgefl.runtime.engine import open_engine

    bands = tuple(manifest["inputs"][0]["shape"][1:2])
    cube = np.random.default_rng(0).random((1,) + bands + (16, 16)).astype(np.float32)
    a = open_engine(str(tmp_path / "b"), "onnxruntime").infer({"cube": cube})["score"]
    b = open_engine(str(out / "bundle"), "onnxruntime").infer({"cube": cube})["score"]
    assert np.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_export_cli_refuses_tensorrt_for_stad(tiny_stad, tmp_path, capsys):
    out, _ = tiny_stad
    code = main(["export", str(out), "--profile", "jetson-tx2", "--format", "tensorrt",
                 "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "onnxruntime only" in err and len(err.strip().splitlines()) == 1


def test_export_routing_comes_from_the_registry(tiny_stad, tmp_path):
    """STAD checkpoints (and a `compress stad` folder) go to STAD's exporter, anything else to the generic."""
    from edgefl.checkpoint import save_checkpoint
    from edgefl.methods import METHODS, exporting_method
    from edgefl.models import build_model

    out, _ = tiny_stad
    assert exporting_method(out) is METHODS["stad"] and exporting_method(out / "student") is METHODS["stad"]
    args = {"in_channels": 1, "num_classes": 2}
    config = {"model": "small_cnn", "model_args": args, "input_shape": [1, 8, 8], "num_classes": 2}
    classifier = save_checkpoint(tmp_path / "cnn", build_model("small_cnn", **args), config)
    assert exporting_method(classifier) is None and exporting_method(tmp_path / "missing") is None


def test_export_refuses_an_out_folder_in_use_before_any_work(tiny_stad, tmp_path, capsys):
    out, _ = tiny_stad
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code = main(["export", str(out / "student"), "--profile", "jetson-tx2", "--out", str(tmp_path / "mine")])
    err = capsys.readouterr().err
    assert code == 2 and "exists (a non-empty directory)" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["mine"] and (tmp_path / "mine" / "notes.txt").exists()
