"""Checkpoints: a directory with `model.safetensors` (weights) and `config.json` (how to rebuild).

Loading never unpickles: weights come from safetensors, the architecture from the model registry, and
config.json (sealed by its own sha256) and every file it lists are checked before anything is used. The
format itself is read and written by ``edgefl.runtime.bundle``, the same module the device uses.
"""

import dataclasses
from pathlib import Path

from edgefl import __version__
from edgefl.errors import EdgeflError
from edgefl.runtime import bundle
from edgefl.runtime.errors import EdgeRuntimeError

FORMAT = bundle.KINDS["checkpoint"].format
VERSION = bundle.KINDS["checkpoint"].version
WEIGHTS = "model.safetensors"
CONFIG = bundle.CHECKPOINT_CONFIG
REQUIRED_KEYS = ("format", "version", "model", "model_args", "input_shape", "num_classes", "files")


@dataclasses.dataclass
class Checkpoint:
    model: object  # torch.nn.Module, in eval mode
    config: dict
    path: Path


def save_checkpoint(path, model, config: dict) -> Path:
    """Write weights and config.

    `config` needs model, model_args, input_shape and num_classes (see the module doc).
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = path / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(path / WEIGHTS)
    full = {"format": FORMAT, "version": VERSION, "edgefl_version": __version__, "labels": None,
            "preprocessing": None, "data": None, "metrics": {}, "compression": None}
    full.update(config)
    full["files"] = bundle.hash_files(str(path), [WEIGHTS], bundle.KINDS["checkpoint"])
    missing = [k for k in REQUIRED_KEYS if k not in full]
    if missing:
        raise EdgeflError(f"checkpoint config lacks {missing} — internal error, please report it")
    bundle.write_document(str(path), "checkpoint", full)
    return path


def _as_host_error(call, *args, **kwargs):
    """The runtime's format errors as EdgeflError (same one-line message)."""
    try:
        return call(*args, **kwargs)
    except EdgeRuntimeError as e:
        raise EdgeflError(str(e)) from None


def read_config(path, verify: bool = False) -> dict:
    """Read and check config.json of a checkpoint directory (its own sha256 included).

    Args:
        verify: also check the weights against their recorded sha256 (``load_*`` always do).
    """
    path = Path(path)
    if not path.is_dir():
        hint = (" (a checkpoint is a directory with model.safetensors and config.json)"
                if path.exists() else "")
        raise EdgeflError(f"checkpoint {path} not found{hint} — check the path or run `edgefl train`")
    config = _as_host_error(bundle.read_checkpoint_config, str(path), verify=verify)
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise EdgeflError(f"checkpoint {path}: config.json lacks {missing} — re-create the checkpoint")
    return config


def load_state_dict(path) -> dict:
    """Verified safetensors weights of a checkpoint directory as a dict of tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    read_config(path, verify=True)
    try:
        return load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as e:
        raise EdgeflError(f"{path}/{WEIGHTS} cannot be read ({e}) — re-create the checkpoint") from None


def load_checkpoint(path) -> Checkpoint:
    """Rebuild the model from the registry (and its compression state), load verified weights."""
    from edgefl.models.reference import model_from_config

    path = Path(path)
    config = read_config(path)
    state = load_state_dict(path)
    model = model_from_config(config, f"checkpoint {path}")
    if config.get("compression"):
        from edgefl.compress import restore_model

        model = restore_model(model, config["compression"], state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise EdgeflError(f"checkpoint {path} does not fit model '{config['model']}' ({first})"
                          " — re-create it") from None
    model.eval()
    return Checkpoint(model, config, path)
