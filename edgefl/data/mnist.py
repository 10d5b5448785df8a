"""MNIST idx files (the shipped copy is the official 10k test split)."""

import gzip
from pathlib import Path

import numpy as np

from edgefl.data.arrays import ArrayData
from edgefl.errors import EdgeflError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "datasets" / "mnist"
IMAGES = "t10k-images-idx3-ubyte.gz"
LABELS = "t10k-labels-idx1-ubyte.gz"
MNIST_PREPROCESSING = {"scale": 1 / 255, "mean": [0.1307], "std": [0.3081]}
IDX_MAGIC = {2051: 3, 2049: 1}  # magic → number of dimensions


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), checking the magic number and the declared size."""
    path = Path(path)
    if not path.is_file():
        raise EdgeflError(f"MNIST file {path} not found — check the path or use the shipped copy")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise EdgeflError(f"{path.name} is not a readable idx file ({e}) — re-download it") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    if magic not in IDX_MAGIC:
        raise EdgeflError(f"{path.name} has magic {magic}, not an MNIST idx file (2051/2049)"
                          " — check the file")
    ndim = IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != header + int(np.prod(dims)):
        raise EdgeflError(f"{path.name} is truncated ({len(raw)} bytes for shape {dims}) — re-download it")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def load_mnist(root=None) -> ArrayData:
    """MNIST images as N×1×28×28 float32 in [0, 1] with int64 labels (default: the shipped 10k split)."""
    root = Path(root) if root else SHIPPED_DIR
    images = read_idx(root / IMAGES)
    labels = read_idx(root / LABELS)
    if len(images) != len(labels):
        raise EdgeflError(f"MNIST in {root}: {len(images)} images but {len(labels)} labels"
                          " — files do not match")
    return ArrayData(images[:, None].astype(np.float32) / 255.0, labels.astype(np.int64),
                     [str(i) for i in range(10)])
