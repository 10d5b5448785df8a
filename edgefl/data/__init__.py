"""Data: loaders for the shipped sets and user files, a seeded split, non-IID partitioners."""

from edgefl.data.arrays import ArrayData, load_image_folder, load_npz, normalize
from edgefl.data.hsi import SHIPPED_SCENES, HSIScene, load_hsi_scene
from edgefl.data.mnist import MNIST_PREPROCESSING, load_mnist
from edgefl.data.partition import partition_dirichlet, partition_shards
from edgefl.data.registry import DATASETS, load_dataset
from edgefl.data.split import train_test_split

__all__ = [
    "ArrayData",
    "DATASETS",
    "HSIScene",
    "MNIST_PREPROCESSING",
    "SHIPPED_SCENES",
    "load_dataset",
    "load_hsi_scene",
    "load_image_folder",
    "load_mnist",
    "load_npz",
    "normalize",
    "partition_dirichlet",
    "partition_shards",
    "train_test_split",
]
