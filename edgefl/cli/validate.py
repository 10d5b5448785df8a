"""Pure checks of command-line values, one function per kind of input.

Each takes the text as typed (or a value) and returns the parsed value, or raises ``ValueError`` whose
message names the problem and the fix in one line. `edgefl.cli.options` turns them into option types, so
a bad value stops the command before any work; they are tested directly in tests/cli/test_validate.py.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

BROKER_SCHEMES = {"mqtt": 1883, "mqtts": 8883}
# a name that is one MQTT topic level and one ACL/user name: no wildcards, separators or blanks
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?\Z|\[?[0-9A-Fa-f:.]+\]?\Z")


def _range_text(low=None, high=None, low_open=False) -> str:
    parts = ([f"{'>' if low_open else '≥'} {low:g}"] if low is not None else []) + (
        [f"≤ {high:g}"] if high is not None else [])
    return " and ".join(parts)


def integer(text, low: int | None = None, high: int | None = None) -> int:
    """A whole number, optionally within [low, high]."""
    try:
        value = int(str(text).strip())
    except ValueError:
        example = low if low is not None else 1
        raise ValueError(f"{text!r} is not a whole number — pass e.g. {example}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{value} is out of range — pass a whole number {_range_text(low, high)}")
    return value


def number(text, low: float | None = None, high: float | None = None, low_open: bool = False) -> float:
    """A finite number, optionally above ``low`` (strictly with ``low_open``) and at most ``high``."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number — pass e.g. 0.5") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number — pass e.g. 0.5")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        raise ValueError(f"{value:g} is out of range — pass a number {_range_text(low, high, low_open)}")
    return value


def port(text) -> int:
    """A TCP port, 1..65535."""
    try:
        return integer(text, 1, 65535)
    except ValueError:
        raise ValueError(f"{text!r} is not a TCP port — pass a number in 1..65535, e.g. 1883") from None


def host(text: str) -> str:
    """A host name or IP address (no scheme, no port, no blanks)."""
    text = str(text).strip()
    if not _HOST.match(text):
        raise ValueError(f"{text!r} is not a host name or IP address — pass e.g. 127.0.0.1 or broker.local")
    return text


def broker_url(text: str) -> str:
    """``mqtt://[USER[:PASSWORD]@]HOST[:PORT]`` or the same with ``mqtts://`` (TLS)."""
    fix = "pass e.g. mqtt://127.0.0.1:1883 or mqtts://broker.local:8883"
    parts = urlsplit(str(text).strip())
    if parts.scheme not in BROKER_SCHEMES or not parts.hostname:
        raise ValueError(f"{text!r} is not a broker URL — {fix}")
    try:
        number_ = parts.port
    except ValueError:
        raise ValueError(f"{text!r} has no valid port (1..65535) — {fix}") from None
    if number_ == 0 or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{text!r} is not a broker URL (scheme, host and port only) — {fix}")
    host(parts.hostname)
    return str(text).strip()


def name(text: str, what: str = "name") -> str:
    """A federation name or client id: one MQTT topic level and one ACL user name.

    Letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at most 64 characters: no MQTT
    wildcards (``+``, ``#``), separators (``/``) or blanks that would widen a subscription or an ACL.
    """
    text = str(text)
    if not _NAME.match(text):
        raise ValueError(f"{what} {text!r} is not a safe MQTT topic level — use letters, digits, '.', '_' or "
                         "'-' (at most 64, e.g. orbit-1); '+', '#', '/' and blanks are refused")
    return text


def choice(text: str, names, what: str) -> str:
    """``text`` if it is one of ``names`` (a registry's keys)."""
    names = sorted(names)
    if text not in names:
        raise ValueError(f"unknown {what} {text!r} — choose one of {', '.join(names)}")
    return text


def key_value(text: str) -> tuple:
    """``key=value`` with the value parsed as JSON when it is JSON (``2`` → 2, ``abc`` → 'abc')."""
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{text!r} is not key=value — pass e.g. rate=0.01")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def partition(text: str) -> tuple:
    """``INDEX/COUNT`` (0-based share of a split): COUNT ≥ 1 and 0 ≤ INDEX < COUNT."""
    try:
        index, count = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"{text!r} is not INDEX/COUNT — pass e.g. 0/10 (the first of ten shares)") from None
    if count < 1:
        raise ValueError(f"{text!r} splits into {count} shares — COUNT must be ≥ 1, e.g. 0/10")
    if not 0 <= index < count:
        raise ValueError(f"{text!r}: INDEX must be in 0..{count - 1} for {count} shares — e.g. 0/{count}")
    return index, count


def int_list(text: str, count: int | None = None, low: int = 1) -> tuple:
    """Comma-separated whole numbers ≥ ``low`` (exactly ``count`` of them when given)."""
    try:
        values = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        values = ()
    if not values or min(values) < low or (count is not None and len(values) != count):
        size = f"{count} " if count else ""
        raise ValueError(f"{text!r} is not {size}comma-separated whole numbers ≥ {low} — pass e.g. "
                         f"{','.join(['4'] * (count or 3))}")
    return values


def float_list(text: str, positive: bool = False) -> tuple:
    """Comma-separated finite numbers (all > 0 with ``positive``): one per input channel, e.g. a mean."""
    import math

    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) and (v > 0 or not positive) for v in values):
        kind = "numbers > 0" if positive else "numbers"
        raise ValueError(f"{text!r} is not comma-separated finite {kind} — pass one per input channel, e.g. "
                         f"{'0.229,0.224,0.225' if positive else '0.485,0.456,0.406'}")
    return values


def existing(text, kind: str = "any") -> Path:
    """A path that exists; ``kind`` 'file' or 'dir' also checks which."""
    path = Path(text)
    if not path.exists():
        raise ValueError(f"{str(path)!r} not found — check the path")
    if kind == "file" and not path.is_file():
        raise ValueError(f"{str(path)!r} is a directory, not a file — pass a file")
    if kind == "dir" and not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file, not a directory — pass a directory")
    return path


def writable_target(text) -> Path:
    """A path a command can create: its nearest existing parent is a writable directory."""
    path = Path(text)
    if not str(text).strip():
        raise ValueError("an empty path — pass a path such as runs/x")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{str(path)!r} cannot be created: {str(parent)!r} is a file — choose another path")
    if not os.access(parent, os.W_OK | os.X_OK) or _pseudo_fs(parent):
        raise ValueError(f"{str(path)!r} cannot be created: {str(parent)!r} is not writable — choose "
                         "another path")
    return path


def _pseudo_fs(path: Path) -> bool:
    """/proc and /sys accept access() checks for root but refuse new files."""
    resolved = path.resolve()
    return any(resolved == Path(p) or Path(p) in resolved.parents for p in ("/proc", "/sys"))


def out_rule(path: Path, force: bool, kind: str = "dir") -> Path:
    """The one --out rule: the path is new (or an empty directory); --force replaces what is there."""
    writable_target(path)
    if not path.exists() and not path.is_symlink():
        return path
    if kind == "dir" and path.is_dir() and not any(path.iterdir()):
        return path
    if not force:
        what = "a non-empty directory" if path.is_dir() else "a file" if path.is_file() else "there"
        raise ValueError(f"{str(path)!r} exists ({what}) — choose a new --out or pass --force to replace it")
    if kind == "dir" and not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file, not a directory — choose another --out")
    if kind == "file" and path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory, not a file — choose another --out")
    return path


def model_ref(text: str) -> str:
    """A zoo model name, or a reference ``package.module:factory`` / ``path/to/file.py:factory``."""
    from edgefl.errors import EdgeflError
    from edgefl.models.reference import resolve_model_reference
    from edgefl.models.registry import model_names

    if ":" not in text:
        return choice(text, model_names(), "model")
    try:
        resolve_model_reference(text, model_names())  # the one decision about what a reference names
    except EdgeflError as exc:
        raise ValueError(str(exc)) from None
    return text


def dataset(text: str) -> str:
    """A shipped dataset name, an existing .npz file or an existing image folder."""
    from edgefl.data.registry import DATASETS

    if text in DATASETS:
        return text
    path = Path(text)
    if not path.exists():
        shipped = ", ".join(sorted(DATASETS))
        raise ValueError(f"data {text!r} not found: neither a shipped dataset ({shipped}) nor an existing "
                         ".npz file or folder — check the name or path")
    if path.is_file() and path.suffix != ".npz":
        raise ValueError(f"data {text!r} is a {path.suffix or 'plain'} file — pass an .npz (x, y) or an "
                         "image folder")
    return text


def scene(text: str) -> str:
    """A shipped hyperspectral scene name or an existing .mat/.npy file."""
    from edgefl.data.hsi import SHIPPED_SCENES

    if text in SHIPPED_SCENES:
        return text
    path = Path(text)
    if path.suffix not in (".mat", ".npy") or not path.is_file():
        shipped = ", ".join(sorted(SHIPPED_SCENES))
        raise ValueError(f"scene {text!r} is neither a shipped scene ({shipped}) nor an existing .mat/.npy "
                         "file — check the name or path")
    return text


def station(text: str):
    """A known ground station name, or ``name:lat:lon[:min_elevation_deg]`` (→ a dict)."""
    from edgefl.sim.orbit import KNOWN_STATIONS

    parts = str(text).split(":")
    if len(parts) == 1:
        return choice(text, KNOWN_STATIONS, "ground station")
    fix = "use a known name or name:lat:lon[:min_elevation_deg], e.g. gs:60:10:10"
    if len(parts) not in (3, 4) or not parts[0]:
        raise ValueError(f"station {text!r} — {fix}")
    try:
        lat, lon = number(parts[1], -90, 90), number(parts[2], -180, 180)
        elevation = number(parts[3], 0, 90) if len(parts) == 4 else None
    except ValueError:
        raise ValueError(f"station {text!r}: latitude in -90..90, longitude in -180..180, elevation in "
                         f"0..90 — {fix}") from None
    out = {"name": parts[0], "lat_deg": lat, "lon_deg": lon}
    if elevation is not None:
        out["min_elevation_deg"] = elevation
    return out


def ground_stations(text: str) -> list:
    """``gs-a,gs-b`` or ``gs-a@HOST:PORT,...``: station brokers (→ [(name, host|None, port|None)])."""
    out = []
    for item in (s.strip() for s in str(text).split(",") if s.strip()):
        who, _, where = item.partition("@")
        host_text, _, port_text = where.partition(":")
        try:
            out.append((name(who, "station"), host(host_text) if host_text else None,
                        port(port_text) if port_text else None))
        except ValueError as exc:
            raise ValueError(f"--stations {item!r}: {exc} — write NAME or NAME@HOST:PORT") from None
    if len({n for n, _, _ in out}) != len(out):
        raise ValueError(f"--stations {text!r} names a station twice — give each one once")
    return out


def features(text: str) -> str:
    """'pixels' or an exported bundle directory (its features output)."""
    if text == "pixels" or (Path(text) / "manifest.json").is_file():
        return text
    raise ValueError(f"features {text!r} is neither 'pixels' nor a bundle directory (with manifest.json) — "
                     "pass pixels or an `edgefl export` bundle")


def tarball(text) -> Path:
    """A gzip tarball path to create (*.tar.gz or *.tgz)."""
    path = writable_target(text)
    if not path.name.endswith((".tar.gz", ".tgz")):
        raise ValueError(f"{str(path)!r}: the pack is a gzip tarball — name it *.tar.gz")
    return path


def names(text: str, what: str = "client id") -> list:
    """Comma-separated names (each one MQTT topic level); empty text is an empty list."""
    return [name(n.strip(), what) for n in str(text).split(",") if n.strip()]


def export_input(text) -> Path:
    """What `edgefl export` takes: a checkpoint directory or an .onnx file."""
    path = existing(text)
    if path.is_file() and path.suffix != ".onnx":
        kind = path.suffix or "plain"
        raise ValueError(f"{str(path)!r} is a {kind} file — pass a checkpoint directory or an .onnx file")
    return path


def client_prefix(text: str) -> str:
    """A client id prefix that makes safe ids (the prefix followed by a number)."""
    name(f"{text}0", "client id")
    return text
