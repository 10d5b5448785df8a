"""Dataset names for the CLI: a shipped name or a path, resolved by one lookup."""

from pathlib import Path

from edgefl.data.arrays import load_image_folder, load_npz
from edgefl.data.mnist import MNIST_PREPROCESSING, load_mnist
from edgefl.errors import EdgeflError

# name → (loader, preprocessing recorded in checkpoints)
DATASETS = {
    "mnist": (load_mnist, MNIST_PREPROCESSING),
}


def _load_path(path: Path):
    if path.is_dir() and (path / "t10k-images-idx3-ubyte.gz").exists():
        return load_mnist(path), MNIST_PREPROCESSING
    if path.is_dir():
        data = load_image_folder(path)
    elif path.suffix == ".npz":
        data = load_npz(path)
    else:
        raise EdgeflError(f"data {path} not found or not understood"
                          " — give 'mnist', an .npz file or an image folder")
    return data, {"scale": 1 / 255, "mean": [0.5] * data.x.shape[1], "std": [0.5] * data.x.shape[1]}


def load_dataset(name_or_path: str):
    """Return (ArrayData, preprocessing) for a shipped dataset name, an `.npz` file or an image folder."""
    if name_or_path in DATASETS:
        loader, prep = DATASETS[name_or_path]
        return loader(), dict(prep)
    return _load_path(Path(name_or_path))
