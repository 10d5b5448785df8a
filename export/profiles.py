"""Device profiles: one TOML file per target in edgefl.device_profiles, validated field by field."""

import dataclasses
import importlib.resources
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

from edgefl.errors import EdgeflError

PROFILE_PACKAGE = "edgefl.device_profiles"


@dataclasses.dataclass(frozen=True)
class Profile:
    """Facts about one deployment target (the README's "Device profiles" names their sources)."""

    name: str
    description: str
    arch: str
    jetpack: str
    l4t: str
    ubuntu: str
    python: str
    cuda: str
    tensorrt: str
    max_opset: int
    fast_fp16: bool
    fast_int8: bool
    dla_cores: int
    memory_gb: float
    sm_arch: str
    default_runtime: str
    default_precision: str
    workspace_mb: int
    pins: dict

    @property
    def has_tensorrt(self) -> bool:
        return bool(self.tensorrt)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# field -> accepted types (bool is checked before int because bool is an int in Python)
FIELD_TYPES = {
    "name": (str,),
    "description": (str,),
    "arch": (str,),
    "jetpack": (str,),
    "l4t": (str,),
    "ubuntu": (str,),
    "python": (str,),
    "cuda": (str,),
    "tensorrt": (str,),
    "max_opset": (int,),
    "fast_fp16": (bool,),
    "fast_int8": (bool,),
    "dla_cores": (int,),
    "memory_gb": (float, int),
    "sm_arch": (str,),
    "default_runtime": (str,),
    "default_precision": (str,),
    "workspace_mb": (int,),
    "pins": (dict,),
}
CHOICES = {
    "arch": {"aarch64", "x86_64"},
    "default_runtime": {"tensorrt", "onnxruntime"},
    "default_precision": {"fp32", "fp16", "int8"},
}


def profile_from_dict(data: dict, source: str = "<dict>") -> Profile:
    """Validate a parsed profile and build a Profile, naming the first bad field.

    Raises:
        EdgeflError: a field is missing, has the wrong type, or holds an unknown value.
    """
    for field, types in FIELD_TYPES.items():
        if field not in data:
            raise EdgeflError(f"device profile {source}: missing field '{field}'"
                              " — add it (see jetson-tx2.toml)")
        value = data[field]
        is_bool = isinstance(value, bool)
        if (bool in types) != is_bool or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise EdgeflError(
                f"device profile {source}: field '{field}' must be {want}, got {type(value).__name__} "
                f"{value!r} — fix the TOML value"
            )
        if field in CHOICES and value not in CHOICES[field]:
            raise EdgeflError(
                f"device profile {source}: field '{field}' is {value!r}; use one of {sorted(CHOICES[field])}"
            )
    unknown = sorted(set(data) - set(FIELD_TYPES))
    if unknown:
        raise EdgeflError(f"device profile {source}: unknown field(s) {unknown}"
                          " — remove them or fix the spelling")
    if not 7 <= data["max_opset"] <= 25:
        raise EdgeflError(f"device profile {source}: max_opset {data['max_opset']} is outside 7..25 — fix it")
    return Profile(**{k: (float(v) if k == "memory_gb" else v) for k, v in data.items()})


def load_profile_file(path) -> Profile:
    """Read and validate one profile TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise EdgeflError(f"device profile file {path} not found — check the path") from None
    except tomllib.TOMLDecodeError as e:
        raise EdgeflError(f"device profile {path.name} is not valid TOML ({e}) — fix the file") from None
    return profile_from_dict(data, path.name)


def _profile_files() -> dict:
    root = importlib.resources.files(PROFILE_PACKAGE)
    return {p.name[: -len(".toml")]: p for p in root.iterdir() if p.name.endswith(".toml")}


def profile_names() -> list:
    """The shipped profiles' names, sorted (no file is parsed)."""
    return sorted(_profile_files())


def list_profiles() -> list:
    """All shipped profiles, validated, sorted by name."""
    return [load_profile_file(p) for _, p in sorted(_profile_files().items())]


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (e.g. 'jetson-tx2') or a profile TOML file by path."""
    files = _profile_files()
    if name_or_path in files:
        return load_profile_file(files[name_or_path])
    if str(name_or_path).endswith(".toml"):
        return load_profile_file(name_or_path)
    raise EdgeflError(f"unknown device profile '{name_or_path}' — choose one of: {', '.join(sorted(files))}")
