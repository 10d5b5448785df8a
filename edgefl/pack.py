"""`edgefl pack`: one tarball holding everything a device needs to run the agent.

Layout of the archive (top folder ``edgefl-agent/``)::

    edgefl/__init__.py          minimal package root (version only)
    edgefl/runtime/...          the edge runtime (runtime/ of this repository)
    bundle/...                  the exported model bundle (manifest.json, model.onnx, ...)
    agent.json                  agent config (broker, federation, client id, bundle path)
    PACK.json                   profile facts, pinned edge stack, sha256 of every file (sealed)
    install.sh, install.py      installer (Python part runs on the device's Python 3.6+)
    first_start.py              first-start TensorRT engine build
    edgefl-agent.service.in     systemd unit template (Restart=always)
    README.txt
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edgefl import __version__
from edgefl.errors import EdgeflError
from edgefl.runtime import bundle as formats
from edgefl.runtime.errors import EdgeRuntimeError

PACK_FORMAT = formats.KINDS["pack"].format
TOP = "edgefl-agent"
TEMPLATES = ("install.sh", "install.py", "first_start.py", "edgefl-agent.service.in", "README.txt")
EXECUTABLE = {"install.sh", "install.py", "first_start.py"}
DATA_PATH = "data/local.npz"
MINIMAL_INIT = '"""edgefl on the device: only the runtime is installed here."""\n\n__version__ = "{v}"\n'

# profile pin key -> pip distribution name; onnxruntime is only pip-installed where the profile's
# default engine is onnxruntime (JetPack boards use TensorRT and the device's own onnxruntime).
PIN_DISTRIBUTIONS = {"numpy": "numpy", "paho_mqtt": "paho-mqtt", "onnxruntime": "onnxruntime"}


@dataclass
class PackResult:
    """What was packed."""

    path: Path
    profile: str
    pins: dict
    files: dict = field(default_factory=dict)
    size_bytes: int = 0
    sha256: str = ""

    def to_json(self) -> dict:
        return {
            "path": str(self.path),
            "profile": self.profile,
            "pins": self.pins,
            "files": len(self.files),
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }


def pin_spec(version: str) -> str:
    """Profile version → pip specifier: '1.19.5' → '==1.19.5', '2.2' → '==2.2.*', '' → '' (any)."""
    version = version.strip()
    if not version:
        return ""
    return f"=={version}" if version.count(".") >= 2 else f"=={version}.*"


def pins_for_profile(profile) -> dict[str, str]:
    """The pinned edge stack for a profile: pip distribution → specifier."""
    pins = {}
    for key, dist in PIN_DISTRIBUTIONS.items():
        if dist == "onnxruntime" and profile.default_runtime != "onnxruntime":
            continue
        pins[dist] = pin_spec(str(profile.pins.get(key, "")))
    if profile.python == "3.6":
        pins["dataclasses"] = "==0.8"  # backport; stdlib from 3.7
    return pins


def read_bundle_manifest(bundle: Path) -> dict:
    """The bundle's manifest, its seal and every file it lists verified (``edgefl.runtime.bundle``)."""
    try:
        return formats.read_manifest(str(bundle), verify=True)
    except EdgeRuntimeError as e:
        raise EdgeflError(str(e)) from None


def check_bundle_profile(manifest: dict, profile) -> None:
    exported_for = (manifest.get("profile") or {}).get("name")
    if exported_for and exported_for != profile.name:
        raise EdgeflError(
            f"the bundle was exported for {exported_for}, not {profile.name} — "
            f"re-export with `edgefl export ... --profile {profile.name}` "
            f"or pack with --profile {exported_for}"
        )


def default_agent_config(*, broker_url: str, federation: str, client_id: str, seed: int = 0) -> dict:
    """Config for ``python -m edgefl.runtime agent``; paths are relative to the install prefix.

    Without credentials in the URL the username is the client id: brokers such as amqtt keep a
    persistent session (and the messages queued while the device is out of contact) only for
    clients that give one.
    """
    from edgefl.sim.brokers import mqtt_options_from_url

    mqtt = mqtt_options_from_url(broker_url)
    mqtt.setdefault("username", client_id)
    return {
        "federation": federation,
        "client_id": client_id,
        "mqtt": mqtt,
        "bundle": "bundle",
        "backend": "auto",
        "data": DATA_PATH,
        "state_path": "agent_state.safetensors",
        "max_payload": 1024 * 1024,
        "seed": seed,
    }


def check_local_data(path: Path) -> None:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
    except (OSError, KeyError, ValueError) as exc:
        raise EdgeflError(f"--data {path}: not an .npz with arrays x and y ({exc})") from None
    if len(x) != len(y) or len(y) == 0:
        raise EdgeflError(f"--data {path}: x and y must hold the same non-zero number of samples")


def runtime_source() -> Path:
    import edgefl.runtime

    return Path(edgefl.runtime.__file__).parent


def collect_files(bundle: Path, manifest: dict, agent_config: dict, data: Path | None) -> dict[str, bytes]:
    """archive path (below TOP) → bytes, everything but PACK.json; of the bundle, the (verified)
    manifest and the files it lists, nothing else."""
    files: dict[str, bytes] = {"edgefl/__init__.py": MINIMAL_INIT.format(v=__version__).encode()}
    src = runtime_source()
    for f in sorted(src.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
            files[f"edgefl/runtime/{f.relative_to(src).as_posix()}"] = f.read_bytes()
    for name in [formats.MANIFEST, *sorted(manifest["files"])]:
        files[f"bundle/{name}"] = (bundle / name).read_bytes()
    templates = resources.files("edgefl.pack_templates")
    for name in TEMPLATES:
        files[name] = templates.joinpath(name).read_bytes()
    files["agent.json"] = (json.dumps(agent_config, indent=1) + "\n").encode()
    if data is not None:
        files[DATA_PATH] = data.read_bytes()
    return files


def pack_agent(
    profile_name: str,
    bundle: str | Path,
    out: str | Path,
    *,
    broker_url: str = "mqtt://localhost:1883",
    federation: str = "edgefl",
    client_id: str = "agent-0",
    data: str | Path | None = None,
    agent_config: dict | None = None,
) -> PackResult:
    """Write the agent tarball for a device profile.

    Args:
        profile_name: device profile (e.g. 'jetson-tx2') — fixes the pinned edge stack.
        bundle: exported bundle directory (`edgefl export`).
        out: the .tar.gz to write.
        broker_url, federation, client_id: written into the default agent config.
        data: the device's labelled samples (.npz with x, y) for local rounds, shipped as
            data/local.npz; without it the device must provide that file before the agent starts.
        agent_config: a full agent config to ship instead of the default one.

    Returns:
        PackResult with the archive path, pins, file count and digest.
    """
    from edgefl.export.profiles import load_profile

    profile = load_profile(profile_name)
    bundle, out = Path(bundle), Path(out)
    if not bundle.is_dir():
        raise EdgeflError(f"bundle directory {bundle} not found — make one with `edgefl export`")
    if not out.name.endswith((".tar.gz", ".tgz")):
        raise EdgeflError(f"{out}: the pack is a gzip tarball — name it *.tar.gz")
    manifest = read_bundle_manifest(bundle)
    check_bundle_profile(manifest, profile)
    pins = pins_for_profile(profile)
    config = agent_config or default_agent_config(
        broker_url=broker_url, federation=federation, client_id=client_id
    )
    data = Path(data) if data else None
    if data is not None:
        check_local_data(data)
    files = collect_files(bundle, manifest, config, data)
    pack_doc = {
        "format": PACK_FORMAT,
        "version": formats.KINDS["pack"].version,
        "edgefl_version": __version__,
        "profile": {
            k: getattr(profile, k)
            for k in ("name", "jetpack", "python", "tensorrt", "arch", "default_runtime", "default_precision")
        },
        "pins": pins,
        "model": manifest.get("model"),
        "local_data": DATA_PATH if data is not None else None,
        "files": {name: formats.sha256_bytes(data) for name, data in sorted(files.items())},
    }
    pack_doc = formats.seal(pack_doc)  # the installer checks it, and every file, before anything
    files[formats.PACK_DOCUMENT] = (json.dumps(pack_doc, indent=1) + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_tarball(files, out)
    data = out.read_bytes()
    return PackResult(out, profile.name, pins, pack_doc["files"], len(data), formats.sha256_bytes(data))


def write_tarball(files: dict[str, bytes], out: Path) -> None:
    """Deterministic gzip tarball (sorted names, fixed mtime and owner)."""
    with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({"/".join(n.split("/")[:i]) for n in files for i in range(1, n.count("/") + 1)})
        for d in [""] + dirs:
            info = tarfile.TarInfo(f"{TOP}/{d}".rstrip("/"))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if name in EXECUTABLE else 0o644
            tar.addfile(info, io.BytesIO(data))


def unpack(archive: str | Path, dest: str | Path) -> Path:
    """Extract a pack (refusing absolute or parent-relative member names); returns the pack folder."""
    dest = Path(dest)
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar.getmembers():
            if m.name.startswith("/") or ".." in Path(m.name).parts or not (m.isfile() or m.isdir()):
                raise EdgeflError(f"{archive}: unsafe member {m.name!r} — not an edgefl pack")
        if hasattr(tarfile, "data_filter"):  # Python ≥ 3.10.12 / 3.11.4
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    return dest / TOP
