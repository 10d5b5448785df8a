"""Partitions as data: which examples each federated client holds, in one file agents and benches share.

A partition file is JSON (indices point into the training examples of `data` as split by `split`)::

    {"format": "edgefl.partition", "version": 1,
     "data": "mnist", "split": {"kind": "stratified", ...}, "examples": 8000,
     "labels_sha256": "...",    # of the partitioned labels (int64): other data is refused, not misread
     "method": {"kind": "dirichlet", "alpha": 0.5, "seed": 0},
     "clients": {"client-0": [3, 17, ...], ...}}

A folder of one `.npz` per client (`CLIENT_ID.npz` holding x and y) is the other form: each client's
examples as given, nothing to index.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from edgefl.data.arrays import ArrayData, load_npz
from edgefl.data.partition import partition_dirichlet
from edgefl.errors import EdgeflError

FORMAT, VERSION = "edgefl.partition", 1


def labels_sha256(labels) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels, "<i8").tobytes()).hexdigest()


def client_ids(n_clients: int, prefix: str = "client-") -> list:
    """client-000 … client-005: at least three digits, zero-padded to the widest index so they sort in
    order — the ids `edgefl federation init` gives the same clients."""
    width = max(3, len(str(max(n_clients - 1, 0))))
    return [f"{prefix}{i:0{width}d}" for i in range(n_clients)]


def class_counts(labels, parts, num_classes: int) -> list:
    """Examples of each class per client: one list of `num_classes` counts per part."""
    labels = np.asarray(labels)
    return [np.bincount(labels[np.asarray(p, np.int64)], minlength=num_classes).tolist() for p in parts]


def dirichlet_partition(labels, n_clients: int, alpha: float, seed: int, *, data: str, split: dict,
                        prefix: str = "client-") -> dict:
    """The partition file's content for a seeded Dirichlet(alpha) label-skew split (pure).

    Returns:
        the JSON-ready dict described in the module docstring.
    """
    parts = partition_dirichlet(np.asarray(labels), n_clients, alpha, seed)
    return {
        "format": FORMAT, "version": VERSION, "data": data, "split": split, "examples": int(len(labels)),
        "labels_sha256": labels_sha256(labels),
        "method": {"kind": "dirichlet", "alpha": alpha, "seed": seed},
        "clients": {cid: [int(i) for i in p] for cid, p in zip(client_ids(n_clients, prefix), parts)},
    }


def write_partition(path, record: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path


def write_client_npz(folder, record: dict, train: ArrayData) -> list:
    """The other form: one `CLIENT_ID.npz` (x float32 N×C×H×W in [0, 1], y) per client; returns the files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for cid, idx in record["clients"].items():
        share = train.subset(np.asarray(idx, np.int64))
        np.savez(folder / f"{cid}.npz", x=share.x.astype(np.float32), y=share.y.astype(np.int64))
        files.append(folder / f"{cid}.npz")
    return files


def read_partition(path) -> dict:
    """Read and check a partition file (format, indices whole numbers in range)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgeflError(f"partition file {path} not found — write one with `edgefl data partition`") \
            from None
    except (ValueError, OSError) as exc:
        raise EdgeflError(f"partition file {path} is not readable JSON ({exc}) — write it again with "
                          "`edgefl data partition`") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise EdgeflError(f"{path} is not an edgefl partition file — write one with `edgefl data partition`")
    if record.get("version") != VERSION:
        raise EdgeflError(f"partition file {path} has version {record.get('version')!r} (this edgefl reads "
                          f"{VERSION}) — write it again with this edgefl")
    clients, n = record.get("clients"), record.get("examples")
    if not isinstance(clients, dict) or not clients or not isinstance(n, int):
        raise EdgeflError(f"partition file {path} lists no clients or no example count — write it again")
    for cid, idx in clients.items():
        if not isinstance(idx, list) or not all(type(i) is int and 0 <= i < n for i in idx):
            raise EdgeflError(f"partition file {path}: client {cid!r} has indices that are not whole numbers "
                              f"in 0..{n - 1} — write it again")
    return record


def client_share(path, client_id: str, train: ArrayData) -> ArrayData:
    """One client's examples: its indices into `train` (a partition file) or its own `.npz` (a folder).

    The file must have been made from the same examples: its count and labels digest are checked.
    """
    path = Path(path)
    if path.is_dir():
        own = path / f"{client_id}.npz"
        if not own.is_file():
            names = sorted(p.stem for p in path.glob("*.npz"))[:5]
            raise EdgeflError(f"{path} holds no {client_id}.npz (it has {names}) — name the client after its "
                              "file")
        return load_npz(own)
    record = read_partition(path)
    if client_id not in record["clients"]:
        known = sorted(record["clients"])
        raise EdgeflError(f"client {client_id!r} is not in {path.name} (it lists {known[0]} … {known[-1]}) — "
                          "use one of its client ids")
    if record["examples"] != len(train) or record.get("labels_sha256") != labels_sha256(train.y):
        raise EdgeflError(f"{path.name} was made from other examples ({record['examples']} from "
                          f"{record.get('data')!r}, split {record.get('split', {}).get('kind')}; here "
                          f"{len(train)}) — pass the --data (and --no-split) it was made with")
    return train.subset(np.asarray(record["clients"][client_id], np.int64))
