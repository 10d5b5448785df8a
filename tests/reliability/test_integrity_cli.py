"""A changed byte anywhere in a checkpoint, bundle or pack is refused before any work, through the
commands a user runs: one line naming the file, exit 2, nothing written."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgefl.runtime.bundle import seal, sha256_bytes
from edgefl.runtime.trt_build import engine_plan

TINY_BUNDLE = Path(__file__).resolve().parents[1] / "runtime" / "data" / "tiny_bundle"


def _run(cmd, **kwargs):
    """(exit code, the stderr lines that are not progress output)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, **kwargs)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if " stage " not in line]
    return proc.returncode, lines


def _flip_byte(path: Path, old: bytes, new: bytes):
    data = path.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    path.write_bytes(data.replace(old, new))


@pytest.fixture
def bundle(tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(TINY_BUNDLE, dst)
    return dst


@pytest.fixture
def edgefl(tool):
    return tool("edgefl", "the edgefl console script (pip install -e .)")


def test_pack_refuses_a_manifest_naming_a_file_outside_the_bundle(bundle, tmp_path, edgefl):
    (tmp_path / "x").write_bytes(b"a file beside the bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["../x"] = sha256_bytes(b"a file beside the bundle")  # right hash, right seal
    (bundle / "manifest.json").write_text(json.dumps(seal(manifest)))
    code, lines = _run([edgefl, "pack", "--bundle", str(bundle), "--out", str(tmp_path / "a.tar.gz")])
    assert code == 2 and len(lines) == 1, lines
    assert "'../x' points outside the bundle" in lines[0] and "edgefl export" in lines[0]
    assert not (tmp_path / "a.tar.gz").exists()


def test_export_refuses_a_checkpoint_whose_config_changed(tmp_path, edgefl):
    from edgefl.checkpoint import save_checkpoint
    from edgefl.models import build_model

    args = {"in_channels": 1, "num_classes": 10}
    ck = save_checkpoint(tmp_path / "ck", build_model("small_cnn", **args),
                         {"model": "small_cnn", "model_args": args, "input_shape": [1, 28, 28],
                          "num_classes": 10, "compression": {"method": "uniform", "bits": 4}})
    _flip_byte(ck / "config.json", b'"bits": 4', b'"bits": 9')  # one byte of the compression state
    code, lines = _run([edgefl, "export", str(ck), "--profile", "jetson-tx2", "--out", str(tmp_path / "b")])
    assert code == 2 and len(lines) == 1, lines
    assert "config.json fails its sha256" in lines[0] and "re-create it" in lines[0]
    assert not (tmp_path / "b").exists()


def test_build_engine_reports_a_changed_bundle_before_tensorrt(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["engine"] = engine_plan("fp16", 256)
    (bundle / "manifest.json").write_text(json.dumps(seal(manifest)))
    cmd = [sys.executable, "-m", "edgefl.runtime", "build-engine", str(bundle)]
    code, lines = _run(cmd)
    assert code == 2 and "tensorrt" in lines[0].lower()  # intact: it gets as far as TensorRT
    data = bytearray((bundle / "head.safetensors").read_bytes())
    data[-1] ^= 0x01
    (bundle / "head.safetensors").write_bytes(bytes(data))
    code, lines = _run(cmd)
    assert code == 2 and len(lines) == 1, lines
    assert "head.safetensors fails its sha256" in lines[0] and "tensorrt" not in lines[0].lower()


def test_installer_check_only_verifies_the_pack(bundle, tmp_path):
    from edgefl.pack import pack_agent, unpack

    pack_agent("jetson-tx2", bundle, tmp_path / "agent.tar.gz")
    folder = unpack(tmp_path / "agent.tar.gz", tmp_path / "u")
    cmd = [sys.executable, str(folder / "install.py"), "--check-only", "--prefix", str(tmp_path / "opt")]
    code, lines = _run(cmd)
    assert code == 2 and "is Python" in lines[-1]  # intact: it gets as far as the interpreter check
    _flip_byte(folder / "agent.json", b'"client_id": "agent-0"', b'"client_id": "agent-1"')
    code, lines = _run(cmd)
    assert code == 2 and len(lines) == 1, lines
    assert "agent.json fails its sha256" in lines[0] and "edgefl pack" in lines[0]
    (folder / "agent.json").write_text((folder / "agent.json").read_text().replace("agent-1", "agent-0"))
    pack_doc = folder / "PACK.json"
    _flip_byte(pack_doc, b'"name": "jetson-tx2"', b'"name": "jetson-tx1"')
    code, lines = _run(cmd)
    assert code == 2 and len(lines) == 1 and "PACK.json fails its sha256" in lines[0], lines
    assert not (tmp_path / "opt").exists()
