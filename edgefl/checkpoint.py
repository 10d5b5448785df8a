"""Checkpoints: a directory with `model.safetensors` (weights) and `config.json` (how to rebuild).

Loading never unpickles: weights come from safetensors, the architecture from the model registry, and
every file is checked against the sha256 recorded in config.json before it is used.
"""

import dataclasses
import json
from pathlib import Path

from edgefl import __version__
from edgefl.errors import EdgeflError
from edgefl.runtime.manifest import sha256_file  # one implementation, shared with the device

FORMAT = "edgefl.checkpoint"
VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
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
    full["files"] = {WEIGHTS: sha256_file(path / WEIGHTS)}
    missing = [k for k in REQUIRED_KEYS if k not in full]
    if missing:
        raise EdgeflError(f"checkpoint config lacks {missing} — internal error, please report it")
    (path / CONFIG).write_text(json.dumps(full, indent=2, sort_keys=True))
    return path


def read_config(path) -> dict:
    """Read and check config.json of a checkpoint directory (no weights loaded)."""
    path = Path(path)
    if not path.is_dir():
        hint = (" (a checkpoint is a directory with model.safetensors and config.json)"
                if path.exists() else "")
        raise EdgeflError(f"checkpoint {path} not found{hint} — check the path or run `edgefl train`")
    try:
        config = json.loads((path / CONFIG).read_text())
    except FileNotFoundError:
        raise EdgeflError(f"checkpoint {path} has no {CONFIG} — it is incomplete; re-create it") from None
    except json.JSONDecodeError as e:
        raise EdgeflError(f"checkpoint {path}/{CONFIG} is corrupt ({e.msg} at line {e.lineno})"
                          " — re-create it") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise EdgeflError(f"{path}/{CONFIG} is not an edgefl checkpoint config — re-create it with edgefl")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise EdgeflError(f"checkpoint {path}: config.json lacks {missing} — re-create the checkpoint")
    if config["version"] > VERSION:
        raise EdgeflError(f"checkpoint {path} has format version {config['version']};"
                          " upgrade edgefl to read it")
    return config


def verify_files(path, files: dict) -> None:
    """Check every recorded file's sha256; raise naming the first file that differs."""
    path = Path(path)
    for name, digest in sorted(files.items()):
        f = path / name
        if not f.is_file():
            raise EdgeflError(f"{path}: {name} is missing — the checkpoint or bundle is incomplete")
        if sha256_file(f) != digest:
            raise EdgeflError(f"{path}: {name} does not match its recorded sha256 (corrupt or modified)"
                              " — re-create it")


def load_state_dict(path) -> dict:
    """Verified safetensors weights of a checkpoint directory as a dict of tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    config = read_config(path)
    verify_files(path, config["files"])
    try:
        return load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as e:
        raise EdgeflError(f"{path}/{WEIGHTS} cannot be read ({e}) — re-create the checkpoint") from None


def load_checkpoint(path) -> Checkpoint:
    """Rebuild the model from the registry (and its compression state), load verified weights."""
    from edgefl.models import build_model

    path = Path(path)
    config = read_config(path)
    state = load_state_dict(path)
    model = build_model(config["model"], **config["model_args"])
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
