"""Checkpoint in, checkpoint out: the library call behind `edgefl compress NAME` for classifier methods."""

from __future__ import annotations

import copy

from edgefl.compress.method import ClassifierData, CompressionResult, run
from edgefl.errors import EdgeflError


def load_float_checkpoint(checkpoint, data: str | None = None):
    """A float checkpoint and the seeded train/test split it was trained on.

    Args:
        checkpoint: float checkpoint directory.
        data: dataset name/path (default: the checkpoint's ``data``).
    Returns:
        (checkpoint, ClassifierData).
    Raises:
        EdgeflError: the checkpoint is already compressed, or names no data and none was given.
    """
    from edgefl.checkpoint import load_checkpoint
    from edgefl.data import load_split, split_arguments

    ckpt = load_checkpoint(checkpoint)
    if ckpt.config.get("compression"):
        method = ckpt.config["compression"].get("method")
        raise EdgeflError(f"{checkpoint} is already compressed ({method}) — start from the float checkpoint")
    data = data or ckpt.config.get("data")
    if not data:
        raise EdgeflError("the checkpoint does not name its data — pass --data (e.g. mnist)")
    split = load_split(data, *split_arguments(ckpt.config))
    prep, shape = ckpt.config.get("preprocessing"), ckpt.config["input_shape"]
    return ckpt, ClassifierData(split.train, split.test, prep, shape)


def save_compressed(out, result: CompressionResult, base_config: dict) -> str:
    """Write the compressed model as a checkpoint directory (config["compression"] = result.state)."""
    from edgefl.checkpoint import save_checkpoint

    keep = ("model", "model_args", "model_source", "input_shape", "num_classes", "labels", "preprocessing",
            "data", "split")
    config = {k: copy.deepcopy(base_config[k]) for k in keep if k in base_config}
    config["compression"] = result.state
    config["metrics"] = {"test_accuracy": result.totals["accuracy_after"], "compression": result.totals}
    return str(save_checkpoint(out, result.model, config))


def compress_checkpoint(
    name: str, checkpoint, out, settings=None, data: str | None = None, progress=None
) -> dict:
    """Load a float checkpoint, compress it with the method ``name`` on its data split, write the result.

    Args:
        name: registry name (``edgefl.methods.registry.METHODS``) of a classifier method.
        checkpoint: float checkpoint directory.
        out: compressed checkpoint directory to write.
        settings: the method's settings (default: its defaults).
        data: dataset name/path (default: the checkpoint's ``data``).
        progress: an ``edgefl.progress`` object.
    Returns:
        JSON-ready summary: {"checkpoint", "totals", "layers", ...the method's extra facts}.
    """
    from edgefl.methods.registry import method_named

    method = method_named(name)
    ckpt, split = load_float_checkpoint(checkpoint, data)
    result = run(method, ckpt.model, split, settings, progress)
    path = save_compressed(out, result, ckpt.config)
    return {"checkpoint": path, **result.to_dict()}
