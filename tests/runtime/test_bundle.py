"""edgefl.runtime.bundle: one format rule for bundles, checkpoints and packs (Python 3.6 compatible)."""
import json
import os

import pytest

from edgefl.runtime.bundle import (SEAL, hash_files, read_checkpoint_config, read_manifest, read_pack,
                                   seal, sha256_bytes, write_document)
from edgefl.runtime.errors import EdgeRuntimeError



def _manifest(bundle):
    with open(os.path.join(bundle, "manifest.json")) as f:
        return json.load(f)


def _rewrite(bundle, manifest):
    with open(os.path.join(bundle, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def test_seal_covers_the_document_but_not_its_layout():
    doc = {"b": [1, 2.5, "x"], "a": {"k": (3, 4)}, "files": {}}
    sealed = seal(doc)
    body = json.dumps({"a": {"k": [3, 4]}, "b": [1, 2.5, "x"], "files": {}}, sort_keys=True,
                      separators=(",", ":")).encode("ascii")
    assert sealed[SEAL] == sha256_bytes(body)  # hand-made canonical form
    assert seal(json.loads(json.dumps(sealed, indent=3)))[SEAL] == sealed[SEAL]
    assert seal(dict(doc, b=[1, 2.5, "y"]))[SEAL] != sealed[SEAL]


def test_a_changed_byte_in_the_manifest_is_refused(bundle):
    path = os.path.join(bundle, "manifest.json")
    with open(path) as f:
        text = f.read()
    assert '"opset": 13' in text
    with open(path, "w") as f:
        f.write(text.replace('"opset": 13', '"opset": 17'))
    with pytest.raises(EdgeRuntimeError, match="manifest.json fails its sha256"):
        read_manifest(bundle, verify=False)


@pytest.mark.parametrize("name", ["../outside.bin", "/etc/hostname", "sub/../../outside.bin", "./x", ""])
def test_names_leading_out_are_refused_even_when_sealed(bundle, name):
    outside = os.path.join(os.path.dirname(bundle), "outside.bin")
    with open(outside, "wb") as f:
        f.write(b"secret")
    m = _manifest(bundle)
    m["files"][name] = sha256_bytes(b"secret")  # a correct hash of a real file: still refused
    _rewrite(bundle, seal(m))
    with pytest.raises(EdgeRuntimeError, match="outside the bundle"):
        read_manifest(bundle)
    with pytest.raises(EdgeRuntimeError, match="outside the bundle"):
        write_document(bundle, "bundle", m)


def test_a_symlink_leading_out_is_refused(bundle, tmp_path):
    target = tmp_path / "elsewhere.bin"
    target.write_bytes(b"elsewhere")
    os.symlink(str(target), os.path.join(bundle, "link.bin"))
    m = _manifest(bundle)
    m["files"]["link.bin"] = sha256_bytes(b"elsewhere")
    _rewrite(bundle, seal(m))
    with pytest.raises(EdgeRuntimeError, match="outside the bundle"):
        read_manifest(bundle)


def test_write_then_read_round_trip_and_unsealed_documents(tmp_path):
    ck = str(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    config = {"model": "m", "files": hash_files(ck, ["model.safetensors"])}
    written = write_document(ck, "checkpoint", config)
    assert read_checkpoint_config(ck) == written and written["format"] == "edgefl.checkpoint"
    unsealed = dict(written)
    del unsealed[SEAL]
    (tmp_path / "config.json").write_text(json.dumps(unsealed))
    with pytest.raises(EdgeRuntimeError, match="carries no document_sha256"):
        read_checkpoint_config(ck)
    assert write_document(ck, "checkpoint", dict(config, version=2))["version"] == 1  # the writer sets it
    newer = dict(written, version=2)
    (tmp_path / "config.json").write_text(json.dumps(seal(newer)))
    with pytest.raises(EdgeRuntimeError, match="upgrade edgefl"):
        read_checkpoint_config(ck)


def test_pack_files_are_verified(tmp_path):
    pack = str(tmp_path)
    (tmp_path / "install.py").write_text(u"print('hi')\n")
    doc = {"format": "edgefl.pack", "version": 1, "files": hash_files(pack, ["install.py"])}
    (tmp_path / "PACK.json").write_text(json.dumps(seal(doc)))
    assert read_pack(pack)["files"] == doc["files"]
    (tmp_path / "install.py").write_text(u"print('ha')\n")
    with pytest.raises(EdgeRuntimeError, match="install.py fails its sha256"):
        read_pack(pack)
    assert read_pack(pack, verify=False)["files"] == doc["files"]
