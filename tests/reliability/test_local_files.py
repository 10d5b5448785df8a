"""Local files are verified against their recorded sha256 before use and never unpickled:
checkpoints (edgefl.checkpoint), bundles (edgefl.runtime.bundle / engine), the model an
aggregator starts from (edgefl.runtime.config), and the aggregator's persisted state."""

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgefl.checkpoint import load_checkpoint, save_checkpoint
from edgefl.errors import EdgeflError
from edgefl.runtime.bundle import seal, sha256_file
from edgefl.runtime.config import load_model_tensors
from edgefl.runtime.engine import open_engine
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.loops import open_aggregator

TINY_BUNDLE = Path(__file__).resolve().parents[1] / "runtime" / "data" / "tiny_bundle"


class _Bomb:
    """Unpickling this creates a marker file: proof that something unpickled it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _flip_byte(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def checkpoint(tmp_path):
    import torch

    from edgefl.models import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn", in_channels=1, num_classes=10, width=4, hidden=8)
    config = {
        "model": "small_cnn",
        "model_args": {"in_channels": 1, "num_classes": 10, "width": 4, "hidden": 8},
        "input_shape": [1, 28, 28],
        "num_classes": 10,
    }
    return save_checkpoint(tmp_path / "ckpt", model, config)


@pytest.fixture
def bundle(tmp_path):
    return Path(shutil.copytree(TINY_BUNDLE, tmp_path / "bundle"))


def test_intact_files_load(checkpoint, bundle):
    assert load_checkpoint(checkpoint).config["model"] == "small_cnn"
    assert "classifier.weight" in load_model_tensors(str(bundle))
    assert "classifier.weight" in load_model_tensors(str(checkpoint))
    assert open_engine(str(bundle), "onnxruntime") is not None


def test_tampered_checkpoint_is_refused_by_host_and_runtime(checkpoint):
    _flip_byte(checkpoint / "model.safetensors")
    with pytest.raises(EdgeflError, match="model.safetensors fails its sha256"):
        load_checkpoint(checkpoint)
    with pytest.raises(EdgeRuntimeError, match="model.safetensors fails its sha256"):
        load_model_tensors(str(checkpoint))  # the aggregator's starting model


def test_checkpoint_with_missing_hashes_is_refused_by_the_runtime(checkpoint):
    cfg = json.loads((checkpoint / "config.json").read_text())
    del cfg["files"]
    (checkpoint / "config.json").write_text(json.dumps(seal(cfg)))
    with pytest.raises(EdgeRuntimeError, match="records no sha256"):
        load_model_tensors(str(checkpoint))


def test_pickle_in_place_of_weights_is_never_unpickled(checkpoint, tmp_path):
    marker = tmp_path / "unpickled"
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(pickle.dumps(_Bomb(str(marker))))
    cfg = json.loads((checkpoint / "config.json").read_text())
    cfg["files"]["model.safetensors"] = sha256_file(weights)  # the attacker also fixed the hashes
    (checkpoint / "config.json").write_text(json.dumps(seal(cfg)))
    with pytest.raises(EdgeflError, match="cannot be read"):
        load_checkpoint(checkpoint)
    with pytest.raises(EdgeRuntimeError):
        load_model_tensors(str(checkpoint))
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.onnx", "head.safetensors", "manifest.json"])
def test_tampered_bundle_is_refused_before_use(bundle, name):
    target = bundle / name
    if name == "manifest.json":  # point the manifest at a different head
        manifest = json.loads(target.read_text())
        manifest["files"]["head.safetensors"] = "0" * 64
        target.write_text(json.dumps(manifest))
    else:
        _flip_byte(target, offset=len(target.read_bytes()) // 2)
    with pytest.raises(EdgeRuntimeError, match="fails its sha256"):
        open_engine(str(bundle), "onnxruntime")
    with pytest.raises(EdgeRuntimeError, match="fails its sha256"):
        load_model_tensors(str(bundle))  # the head an agent fine-tunes / an aggregator starts from


def test_corrupt_aggregator_state_is_refused_with_the_fix(tmp_path, flkit):
    state = tmp_path / "state.safetensors"
    state.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(EdgeRuntimeError, match="unreadable .* delete it"):
        open_aggregator(flkit.aggregator_config(federation="rel"), flkit.init_model(), str(state))


def test_runtime_cli_reports_a_tampered_model_in_one_line(checkpoint, tmp_path):
    _flip_byte(checkpoint / "model.safetensors")
    cfg = tmp_path / "agg.json"
    cfg.write_text(
        json.dumps(
            {
                "aggregator": {"federation": "rel"},
                "model": str(checkpoint),
                "mqtt": {"host": "127.0.0.1", "port": 1},
            }
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "edgefl.runtime", "aggregate", "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: checkpoint")
    assert "model.safetensors fails its sha256" in proc.stderr
