"""Datasets with their own train/test split (Fashion-MNIST, idx folders); the split a checkpoint records."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefl.data import load_dataset, load_fashion_mnist, load_split, split_arguments
from edgefl.data.idx_folder import DEBIAN_DIR
from edgefl.errors import EdgeflError

EDGEFL = str(Path(sys.executable).with_name("edgefl"))


def write_idx(path: Path, array: np.ndarray) -> None:
    """An MNIST-style idx file: magic 2051 (images) / 2049 (labels), big-endian dims, uint8 data."""
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def idx_folder(root: Path, n_train=60, n_test=20, size=8, seed=0) -> Path:
    """Four idx files whose images encode their label (class c is a square of brightness 25·c)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 3
        images = np.repeat(labels[:, None, None] * 25, size * size, 1).reshape(n, size, size)
        images = images + rng.integers(0, 5, images.shape)
        write_idx(root / f"{part}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{part}-labels-idx1-ubyte.gz", labels)
    return root


def test_idx_folder_keeps_its_own_split(tmp_path):
    root = idx_folder(tmp_path / "idx")
    split = load_split(str(root))
    assert split.split == {"kind": "official", "train": 60, "test": 20}
    assert split.train.x.shape == (60, 1, 8, 8) and split.test.x.shape == (20, 1, 8, 8)
    assert split.train.y[:4].tolist() == [0, 1, 2, 0]
    expected_mean = float(split.train.x.mean())
    assert split.preprocessing["mean"] == [round(expected_mean, 4)]
    data, _ = load_dataset(str(root))
    assert len(data) == 80 and np.array_equal(data.x[60:], split.test.x)


def test_an_explicit_fraction_splits_the_whole_pool(tmp_path):
    root = idx_folder(tmp_path / "idx")
    split = load_split(str(root), 0.25, seed=3)
    assert split.split == {"kind": "stratified", "test_fraction": 0.25, "seed": 3, "train": 60, "test": 20}
    assert np.bincount(split.test.y).tolist() == [7, 7, 6]  # 25% of 27/27/26, rounded per class


def test_split_arguments_reproduce_what_a_checkpoint_recorded():
    assert split_arguments({"split": {"kind": "official", "train": 6, "test": 2}}) == (None, 0)
    assert split_arguments({"split": {"kind": "stratified", "test_fraction": 0.1, "seed": 4}}) == (0.1, 4)
    # checkpoints written before "split" existed
    assert split_arguments({"metrics": {"test_fraction": 0.3, "seed": 2}}) == (0.3, 2)
    assert split_arguments({}) == (0.2, 0)


def test_missing_fashion_mnist_names_the_install_command(tmp_path):
    with pytest.raises(EdgeflError, match=r"apt-get install dataset-fashion-mnist.*--data DIR"):
        load_fashion_mnist(tmp_path)


def test_a_missing_idx_file_is_named(tmp_path):
    root = idx_folder(tmp_path / "idx")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(EdgeflError, match=r"lacks t10k-labels-idx1-ubyte\[.gz\] — put the four"):
        load_split(str(root))


def test_fashion_mnist_from_the_debian_package():
    if not DEBIAN_DIR.is_dir():  # .ci/run installs it; locally it is optional
        assert not os.environ.get("CI"), "CI must install dataset-fashion-mnist (see .ci/run)"
        pytest.skip("dataset-fashion-mnist not installed")
    split = load_split("fashion-mnist")
    assert split.split == {"kind": "official", "train": 60000, "test": 10000}
    assert split.train.x.shape == (60000, 1, 28, 28) and split.train.x.dtype == np.float32
    assert np.bincount(split.test.y).tolist() == [1000] * 10
    assert np.bincount(split.train.y).tolist() == [6000] * 10
    assert split.train.labels[9] == "Ankle boot"
    assert abs(float(split.train.x.mean()) - split.preprocessing["mean"][0]) < 1e-3
    assert abs(float(split.train.x.std()) - split.preprocessing["std"][0]) < 1e-3


def test_train_records_the_official_split(tmp_path):
    root = idx_folder(tmp_path / "idx", n_train=96, n_test=30, size=12)
    out = tmp_path / "ck"
    proc = subprocess.run([EDGEFL, "train", "--model", "small_cnn", "--data", str(root), "--epochs", "1",
                           "--batch-size", "32", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    config = json.loads((out / "config.json").read_text())
    assert config["split"] == {"kind": "official", "train": 96, "test": 30}
    assert result["train_examples"] == 96 and result["test_examples"] == 30


def test_the_readme_npz_example_trains(tmp_path):
    """The README's `.npz` snippet, run as written, gives a file `edgefl train` accepts."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    snippet = readme.split("An `.npz` from numpy:\n\n```python\n", 1)[1].split("```", 1)[0]
    subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, check=True, timeout=60)
    proc = subprocess.run([EDGEFL, "train", "--model", "small_cnn", "--data", "tiles.npz", "--epochs", "1",
                           "--out", "ck", "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["input_shape"] == [3, 32, 32] and config["num_classes"] == 4
    split = config["split"]  # the labels are random, so the per-class rounding varies by a few images
    assert (split["kind"], split["test_fraction"], split["train"] + split["test"]) == ("stratified", 0.2, 600)
    assert abs(split["test"] - 120) <= 2
