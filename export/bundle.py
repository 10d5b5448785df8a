"""The deployable bundle's parts: head.safetensors, calib.npy and the manifest's content.

The runtime reads this directory (``edgefl.runtime``), so the manifest keys are a contract:
format, version, edgefl_version, model, model_file, inputs, outputs, preprocessing, labels,
profile, precision, opset, compression, parity (gated checks only), files, head; plus parity_info
(reported, not gated), engine, verification and settings. ``edgefl.runtime.bundle`` writes, seals
and reads it (one module for the format, shared with the device).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgefl.runtime.bundle import KINDS

BUNDLE_FORMAT, BUNDLE_VERSION = KINDS["bundle"].format, KINDS["bundle"].version
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
    head: str | None = HEAD_FILE,
) -> dict:
    """Assemble the manifest dict (pure). ``files`` maps file name -> sha256 for every bundle file.

    ``head`` is the classifier head file the device fine-tunes, None for a model without one (STAD).
    """
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
        "head": head,
        "files": dict(sorted(files.items())),
    }
