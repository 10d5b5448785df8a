"""The deployable bundle: manifest.json (+ sha256 of every file), head.safetensors, calib.npy.

The runtime reads this directory (``edgefl.runtime``), so the manifest keys are a contract
(see the team conventions): format, version, edgefl_version, model, model_file, inputs, outputs,
preprocessing, labels, profile, precision, opset, compression, parity (gated checks only), files,
head; plus parity_info (reported, not gated), engine, verification and settings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from edgefl.errors import EdgeflError
from edgefl.runtime.manifest import sha256_file  # one implementation, shared with the device

BUNDLE_FORMAT = "edgefl.bundle"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
HEAD_FILE = "head.safetensors"
CALIB_FILE = "calib.npy"


def write_head(path, weight: np.ndarray, bias: np.ndarray) -> Path:
    """Write the classifier head (weight [C, F], bias [C]) as safetensors, float32."""
    from safetensors.numpy import save_file

    tensors = {
        "weight": np.ascontiguousarray(weight, np.float32),
        "bias": np.ascontiguousarray(bias, np.float32),
    }
    save_file(tensors, str(path), metadata={"format": "edgefl.head", "version": "1"})
    return Path(path)


def write_calibration(path, x: np.ndarray) -> Path:
    """Calibration inputs (normalised, float32 N×C×H×W) as .npy without pickle."""
    np.save(str(path), np.ascontiguousarray(x, np.float32), allow_pickle=False)
    return Path(path)


def io_spec(name: str, shape, dtype: str = "float32") -> dict:
    """One manifest input/output entry; symbolic dimensions are strings (e.g. "batch")."""
    return {"name": name, "shape": [d if isinstance(d, str) else int(d) for d in shape], "dtype": dtype}


def build_manifest(
    *,
    edgefl_version: str,
    model: str,
    inputs: list,
    outputs: list,
    preprocessing,
    labels,
    profile: dict,
    precision: str,
    opset: int,
    compression,
    parity: dict,
    parity_info: dict,
    verification: dict,
    settings: dict,
    engine,
    files: dict,
) -> dict:
    """Assemble the manifest dict (pure). ``files`` maps file name -> sha256 for every bundle file."""
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "edgefl_version": edgefl_version,
        "model": model,
        "model_file": MODEL_FILE,
        "inputs": inputs,
        "outputs": outputs,
        "preprocessing": preprocessing,
        "labels": labels,
        "profile": profile,
        "precision": precision,
        "opset": int(opset),
        "compression": compression,
        "parity": parity,
        "parity_info": parity_info,
        "verification": verification,
        "settings": settings,
        "engine": engine,
        "head": HEAD_FILE,
        "files": dict(sorted(files.items())),
    }


def hash_bundle_files(bundle_dir, names) -> dict:
    """{name: sha256} for the given files of a bundle directory."""
    bundle_dir = Path(bundle_dir)
    return {name: sha256_file(bundle_dir / name) for name in names}


def write_manifest(bundle_dir, manifest: dict) -> Path:
    """Write manifest.json atomically (temp file + rename)."""
    path = Path(bundle_dir) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def read_manifest(bundle_dir) -> dict:
    """Read and sanity-check a bundle's manifest.json."""
    path = Path(bundle_dir) / MANIFEST
    if not path.is_file():
        raise EdgeflError(f"{bundle_dir} has no {MANIFEST} — pass a directory written by `edgefl export`")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise EdgeflError(f"{path} is not valid JSON ({exc}) — re-export the bundle") from None
    if manifest.get("format") != BUNDLE_FORMAT or manifest.get("version") != BUNDLE_VERSION:
        raise EdgeflError(f"{path} is not an {BUNDLE_FORMAT} v{BUNDLE_VERSION} manifest — re-export it")
    return manifest


def verify_bundle(bundle_dir) -> dict:
    """Check every file listed in the manifest against its sha256; returns the manifest.

    Raises:
        EdgeflError: a listed file is missing or its content changed.
    """
    manifest = read_manifest(bundle_dir)
    for name, expected in manifest.get("files", {}).items():
        path = Path(bundle_dir) / name
        if not path.is_file():
            raise EdgeflError(
                f"bundle file {name} is missing from {bundle_dir} — copy the whole bundle again"
            )
        actual = sha256_file(path)
        if actual != expected:
            raise EdgeflError(
                f"bundle file {name} is corrupted (sha256 {actual[:12]}… != manifest {expected[:12]}…) — "
                "copy the bundle again or re-export"
            )
    return manifest
