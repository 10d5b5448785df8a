"""Idx-file datasets with an official train/test split: Fashion-MNIST, or any folder of MNIST-style idx files.

Fashion-MNIST (Zalando Research, MIT licence) is not shipped inside edgefl: Debian packages it as
`dataset-fashion-mnist`, which installs the four standard idx files under DEBIAN_DIR.
"""

from pathlib import Path

import numpy as np

from edgefl.data.arrays import ArrayData
from edgefl.data.mnist import read_idx
from edgefl.errors import EdgeflError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL = "sudo apt-get install dataset-fashion-mnist"
# split → (images, labels), without the optional .gz suffix
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"]
# mean and std of the 60,000 training images (scaled to [0, 1])
FASHION_PREPROCESSING = {"scale": 1 / 255, "mean": [0.2860], "std": [0.3530]}


def find_idx(root: Path, stem: str):
    """root/stem.gz or root/stem, whichever exists (None when neither does)."""
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def has_idx_split(root: Path) -> bool:
    """True when `root` holds all four train/t10k idx files."""
    return root.is_dir() and all(find_idx(root, stem) for pair in FILES.values() for stem in pair)


def _read_part(root: Path, part: str, labels) -> ArrayData:
    images_stem, labels_stem = FILES[part]
    images, targets = read_idx(find_idx(root, images_stem)), read_idx(find_idx(root, labels_stem))
    if images.ndim != 3 or len(images) != len(targets):
        raise EdgeflError(f"{root}: {part} has images {images.shape} but {len(targets)} labels — "
                          "re-download it")
    return ArrayData(images[:, None].astype(np.float32) / 255.0, targets.astype(np.int64), labels)


def load_idx_split(root, labels=None):
    """(train, test) ArrayData from the four standard idx files in `root` (the files' own split)."""
    root = Path(root)
    if not has_idx_split(root):
        missing = [s for pair in FILES.values() for s in pair if not find_idx(root, s)]
        raise EdgeflError(f"{root} lacks {missing[0]}[.gz] — put the four train/t10k idx files there")
    train, test = _read_part(root, "train", labels), _read_part(root, "test", labels)
    if train.x.shape[1:] != test.x.shape[1:]:
        raise EdgeflError(f"{root}: train images are {train.x.shape[1:]}, test {test.x.shape[1:]} — "
                          "they must match")
    return train, test


def load_fashion_mnist(root=None):
    """Fashion-MNIST's official split: 60,000 train and 10,000 test images, N×1×28×28 float32 in [0, 1].

    Args:
        root: folder with the idx files (default: where `dataset-fashion-mnist` installs them).
    """
    root = Path(root) if root else DEBIAN_DIR
    if not has_idx_split(root):
        raise EdgeflError(
            f"Fashion-MNIST not found in {root} — install it with `{INSTALL}` or pass --data DIR holding its "
            "four idx files"
        )
    return load_idx_split(root, list(FASHION_LABELS))


def preprocessing_from(train: ArrayData) -> dict:
    """Per-channel mean/std of the training images (what a folder of idx files is normalised with)."""
    x = train.x
    mean = [round(float(v), 4) for v in x.mean(axis=(0, 2, 3))]
    std = [round(float(v), 4) for v in x.std(axis=(0, 2, 3))]
    return {"scale": 1 / 255, "mean": mean, "std": std}
