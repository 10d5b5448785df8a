"""Dataset names for the CLI: a shipped name or a path, resolved by one lookup, and the split to train on.

A dataset either comes as one pool (split here, seeded and stratified) or with its own official
train/test split (Fashion-MNIST, a folder of train/t10k idx files), which is used as published.
"""

import dataclasses
from pathlib import Path

import numpy as np

from edgefl.data.arrays import ArrayData, load_image_folder, load_npz
from edgefl.data.idx_folder import (
    FASHION_PREPROCESSING,
    load_fashion_mnist,
    load_idx_split,
    preprocessing_from,
)
from edgefl.data.mnist import MNIST_PREPROCESSING, load_mnist
from edgefl.data.split import train_test_split
from edgefl.errors import EdgeflError

DEFAULT_TEST_FRACTION = 0.2


@dataclasses.dataclass
class Split:
    """What a model is trained and judged on; `split` records how it was made (goes into checkpoints)."""

    train: ArrayData
    test: ArrayData
    preprocessing: dict
    split: dict


def _mnist():
    return load_mnist(), None, MNIST_PREPROCESSING


def _fashion_mnist():
    train, test = load_fashion_mnist()
    return train, test, FASHION_PREPROCESSING


# name → loader returning (data or official train part, official test part or None, preprocessing)
DATASETS = {
    "mnist": _mnist,
    "fashion-mnist": _fashion_mnist,
}


def _npz_preprocessing(data: ArrayData) -> dict:
    return {"scale": 1 / 255, "mean": [0.5] * data.x.shape[1], "std": [0.5] * data.x.shape[1]}


def _load_path(path: Path):
    if path.is_dir() and (path / "train.npz").is_file() and (path / "test.npz").is_file():
        train, test = load_npz(path / "train.npz"), load_npz(path / "test.npz")  # a user's own pair
        return train, test, _npz_preprocessing(train)
    idx_files = sorted(path.glob("*-idx[13]-ubyte*")) if path.is_dir() else []
    if idx_files and not any(f.name.startswith("train-") for f in idx_files):
        return load_mnist(path), None, MNIST_PREPROCESSING  # MNIST's t10k files alone: one pool
    if idx_files:
        train, test = load_idx_split(path)  # names a missing file
        return train, test, preprocessing_from(train)
    if path.is_dir():
        data = load_image_folder(path)
    elif path.suffix == ".npz":
        data = load_npz(path)
    else:
        raise EdgeflError(
            f"data {path} not found or not understood — give {' or '.join(map(repr, DATASETS))}, "
            "an .npz file, an image folder or a folder of idx files"
        )
    return data, None, _npz_preprocessing(data)


def _load(name_or_path: str):
    if name_or_path in DATASETS:
        return DATASETS[name_or_path]()
    return _load_path(Path(name_or_path))


def load_dataset(name_or_path: str):
    """Return (ArrayData, preprocessing): every example of a shipped name, an `.npz` file or a folder.

    A dataset with an official split comes back as its training part followed by its test part.
    """
    data, test, prep = _load(name_or_path)
    if test is not None:
        data = ArrayData(np.concatenate([data.x, test.x]), np.concatenate([data.y, test.y]), data.labels)
    return data, dict(prep)


def load_split(name_or_path: str, test_fraction=None, seed: int = 0, no_split: bool = False) -> Split:
    """The train/test split of a dataset: its official one, or seeded and stratified.

    Args:
        name_or_path: a shipped name, an `.npz` file or a folder (a folder holding `train.npz` and
            `test.npz` is a user's own split, used as given).
        test_fraction: None uses the dataset's official split when it has one (else 0.2, stratified);
            a number always holds out that fraction of every example, stratified by label.
        seed: seed of the stratified split.
        no_split: train on the data as given, nothing held out (an official split keeps its training
            part); `test` is then empty.
    """
    data, test, prep = _load(name_or_path)
    if no_split:
        if test_fraction is not None:
            raise EdgeflError("a test fraction and no split exclude each other — pass one of them")
        empty = data.subset(np.zeros(0, np.int64))
        return Split(data, empty, dict(prep), {"kind": "none", "train": len(data), "test": 0})
    if test is not None and test_fraction is None:
        return Split(data, test, dict(prep), {"kind": "official", "train": len(data), "test": len(test)})
    if test is not None:
        data = ArrayData(np.concatenate([data.x, test.x]), np.concatenate([data.y, test.y]), data.labels)
    fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
    train, held_out = train_test_split(data, fraction, seed)
    record = {"kind": "stratified", "test_fraction": fraction, "seed": seed, "train": len(train),
              "test": len(held_out)}
    return Split(train, held_out, dict(prep), record)


def split_arguments(config: dict):
    """(test_fraction, seed) reproducing the split a checkpoint config records (older ones: in metrics)."""
    record = config.get("split") or {}
    metrics = config.get("metrics") or {}
    if record.get("kind") == "official":
        return None, 0
    if record.get("kind") == "stratified":
        return record["test_fraction"], record["seed"]
    return metrics.get("test_fraction", DEFAULT_TEST_FRACTION), metrics.get("seed", 0)
